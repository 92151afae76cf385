"""Benchmark: does letting the search see each trial's cost save energy for the same result?

The same Optuna search of small torch MLPs (a synthetic regression; on the CPU here, on the GPU
with ``--device cuda``) runs with ``--seeds`` seeds in three variants:

- ``plain``: TPE minimising the validation loss;
- ``constraint``: the same, with ``AuditCallback(constraint=...)`` at the median energy of a
  few random trials measured first (the calibration, counted in no variant);
- ``two-objectives``: TPE on (validation loss, the trial's energy from ``audit.usage``).

Every trial's energy is its ledger record's (``auditor_energy_kwh``). For each seed it reports:

- the energy the variant spent to reach within ``--within`` (1 %) of the plain search's best
  loss of that seed, against what the plain search spent to reach it;
- the best loss each variant reached within the energy the plain search spent in all.

Usage::

    .venv/bin/python scripts/bench_steering.py [--seeds 5] [--trials 40] [--within 0.01]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

import optuna
import torch

VARIANTS = ("plain", "constraint", "two-objectives")


@dataclass
class Search:
    """One search's trials in order: (loss, energy kWh), failures and prunes included as inf loss."""

    variant: str
    seed: int
    trials: list[tuple[float, float]]

    def energy_to_reach(self, target: float) -> float | None:
        """kWh spent up to the first trial with loss <= target (None: never)."""
        spent = 0.0
        for loss, kwh in self.trials:
            spent += kwh
            if loss <= target:
                return spent
        return None

    def best_within(self, kwh: float) -> float:
        """The best loss among the trials finished within ``kwh`` of energy."""
        spent, best = 0.0, math.inf
        for loss, energy in self.trials:
            spent += energy
            if spent > kwh * (1 + 1e-9):
                break
            best = min(best, loss)
        return best

    @property
    def best(self) -> float:
        return min(loss for loss, _ in self.trials)

    @property
    def total_kwh(self) -> float:
        return sum(kwh for _, kwh in self.trials)


def data(device: str) -> tuple[torch.Tensor, ...]:
    """A fixed synthetic regression: 20 features, a smooth non-linear target, noise."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3000, 20, generator=generator)
    w = 0.25 * torch.randn(20, 3, generator=generator)
    y = torch.sin(x @ w).sum(dim=1, keepdim=True) + 0.1 * torch.randn(3000, 1, generator=generator)
    return tuple(t.to(device) for t in (x[:2000], y[:2000], x[2000:], y[2000:]))


def objective_for(device: str, audit, two_objectives: bool):  # noqa: ANN001, ANN202 - a closure for Optuna
    x_train, y_train, x_val, y_val = data(device)

    def objective(trial: optuna.Trial):  # noqa: ANN202
        hidden = trial.suggest_int("hidden", 8, 1024, log=True)
        layers = trial.suggest_int("layers", 1, 4)
        epochs = trial.suggest_int("epochs", 1, 40, log=True)
        batch = trial.suggest_categorical("batch", [32, 128, 512])
        lr = trial.suggest_float("lr", 1e-4, 3e-2, log=True)
        torch.manual_seed(trial.number)
        blocks: list[torch.nn.Module] = []
        width = 20
        for _ in range(layers):
            blocks += [torch.nn.Linear(width, hidden), torch.nn.ReLU()]
            width = hidden
        model = torch.nn.Sequential(*blocks, torch.nn.Linear(width, 1)).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        for _ in range(epochs):
            order = torch.randperm(len(x_train), device=device)
            for start in range(0, len(x_train), batch):
                rows = order[start:start + batch]
                optimizer.zero_grad()
                torch.nn.functional.mse_loss(model(x_train[rows]), y_train[rows]).backward()
                optimizer.step()
        with torch.no_grad():
            loss = float(torch.nn.functional.mse_loss(model(x_val), y_val))
        if not math.isfinite(loss):
            raise optuna.TrialPruned("diverged")
        return (loss, audit.usage(trial).energy_kwh) if two_objectives else loss

    return objective


def run(variant: str, seed: int, trials: int, device: str, constraint_kwh: float | None, folder: str) -> Search:
    from auditor.integrations.optuna import AuditCallback

    constraint = f"{constraint_kwh * 1000:.6f} Wh" if variant == "constraint" and constraint_kwh else None
    audit = AuditCallback(ledger=os.path.join(folder, "ledger.db"), sweep=f"{variant}-{seed}", region="FR",
                          constraint=constraint)
    two = variant == "two-objectives"
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=8)
    study = optuna.create_study(study_name=f"{variant}-{seed}", sampler=sampler,
                                directions=["minimize", "minimize"] if two else ["minimize"])
    audit.attach(study)
    study.optimize(objective_for(device, audit, two), n_trials=trials, callbacks=[audit])
    audit.flush()
    rows = []
    for trial in study.trials:
        loss = (trial.values[0] if trial.values else math.inf)
        rows.append((loss, float(trial.user_attrs.get("auditor_energy_kwh", 0.0))))
    return Search(variant, seed, rows)


def calibrate(device: str, folder: str, n: int = 8) -> float:
    """The median energy of ``n`` random configurations: the constraint's limit."""
    from auditor.integrations.optuna import AuditCallback

    audit = AuditCallback(ledger=os.path.join(folder, "ledger.db"), sweep="calibration", region="FR")
    study = optuna.create_study(study_name="calibration", sampler=optuna.samplers.RandomSampler(seed=12345))
    audit.attach(study)
    study.optimize(objective_for(device, audit, False), n_trials=n, callbacks=[audit])
    audit.flush()
    return statistics.median(float(t.user_attrs["auditor_energy_kwh"]) for t in study.trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--within", type=float, default=0.01)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    started = time.monotonic()
    folder = tempfile.mkdtemp(prefix="bench-steering-")
    limit = calibrate(args.device, folder)
    print(f"# machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"torch {torch.__version__}, optuna {optuna.__version__}, device {args.device}")
    print(f"# command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"# constraint: {limit * 1e6:.1f} mWh a trial (median of 8 random trials)")
    print("| seed | variant | best loss | total energy | energy to within "
          f"{args.within:.0%} of plain's best | vs plain | best loss within plain's energy |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    savings: dict[str, list[float]] = {v: [] for v in VARIANTS[1:]}
    reached: dict[str, int] = dict.fromkeys(VARIANTS[1:], 0)
    for seed in range(args.seeds):
        searches = {v: run(v, seed, args.trials, args.device, limit, folder) for v in VARIANTS}
        plain = searches["plain"]
        target = plain.best * (1 + args.within)
        plain_energy = plain.energy_to_reach(target)
        assert plain_energy is not None
        for variant, search in searches.items():
            energy = search.energy_to_reach(target)
            ratio = energy / plain_energy if energy is not None else None
            if variant != "plain" and ratio is not None:
                savings[variant].append(1 - ratio)
                reached[variant] += 1
            print(f"| {seed} | {variant} | {search.best:.4f} | {search.total_kwh * 1e6:.1f} mWh | "
                  f"{f'{energy * 1e6:.1f} mWh' if energy is not None else 'not reached'} | "
                  f"{f'{ratio:.2f}x' if ratio is not None else '-'} | {search.best_within(plain.total_kwh):.4f} |")
    print()
    for variant in VARIANTS[1:]:
        values = savings[variant]
        median = f"{statistics.median(values):+.0%}" if values else "n/a"
        print(f"- {variant}: reached within {args.within:.0%} of plain's best in {reached[variant]} of {args.seeds} seeds; "
              f"energy saved to get there, median over those: {median}")
    print(f"- took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
