"""`audit demo`: a real, budgeted Optuna search of small torch models on the CPU.

Trains MLPs on a generated two-spirals data set (nothing downloaded), with median pruning,
under an energy budget meant to stop the search part-way (``configs/demo.toml``), shows a
progress bar, then prints what the ledger holds for the search.

The budget is ``worth`` full trials of this machine: before the search, one trial of the space's
middle is trained for every epoch and metered (outside the ledger), and the limit is ``worth`` times its energy,
rounded to two figures. A fixed ``limit`` (``"20 mWh"``) is used as it is instead. Either way a
fast and a slow machine both see pruning and a budget stop, a few dozen trials in.
"""

from __future__ import annotations

import logging
import math
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    "search": {"trials": 100, "epochs": 30, "samples": 4000, "seed": 0},
    "space": {"hidden": [8, 96], "layers": [1, 3], "lr": [1e-3, 1e-1]},
    "budget": {"worth": 12, "mode": "stop-new"},
}


def load_demo_config(path: Path | None = None) -> dict[str, Any]:
    """The demo's settings: ``configs/demo.toml`` when run from the project, else the defaults."""
    candidate = path or Path("configs/demo.toml")
    if candidate.is_file():
        with candidate.open("rb") as f:
            loaded = tomllib.load(f)
        return {section: {**DEFAULTS[section], **loaded.get(section, {})} for section in DEFAULTS}
    return DEFAULTS


def two_spirals(samples: int, seed: int) -> tuple[Any, Any, Any, Any]:
    """A generated two-spirals classification set, split 80/20."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    n = samples // 2
    turns = torch.rand(n, generator=generator) * 3 * math.pi + 0.5
    noise = lambda: torch.randn(n, generator=generator) * 0.25  # noqa: E731
    first = torch.stack([turns * torch.cos(turns) + noise(), turns * torch.sin(turns) + noise()], dim=1)
    second = -first + torch.randn(n, 2, generator=generator) * 0.1
    x = torch.cat([first, second]) / 10
    y = torch.cat([torch.zeros(n), torch.ones(n)]).long()
    order = torch.randperm(2 * n, generator=generator)
    x, y = x[order], y[order]
    cut = int(0.8 * len(x))
    return x[:cut], y[:cut], x[cut:], y[cut:]


def _show_forecasts() -> None:
    """The demo shows the auditor's cost forecasts (INFO) as well as its warnings."""
    logging.getLogger("auditor").setLevel(logging.INFO)


def _shown(limit: str) -> str:
    from auditor.budget import Budget

    return Budget.parse(limit).limit.describe()


@dataclass
class DemoResult:
    """What the demo ran and where it is recorded."""

    sweep: str
    ledger: str
    trials: int
    stopped_by_budget: bool


def _mlp(hidden: int, layers: int) -> Any:
    import torch

    blocks: list[Any] = []
    width = 2
    for _ in range(layers):
        blocks += [torch.nn.Linear(width, hidden), torch.nn.ReLU()]
        width = hidden
    return torch.nn.Sequential(*blocks, torch.nn.Linear(width, 2))


def _train_epoch(model: Any, optimizer: Any, x_train: Any, y_train: Any, x_val: Any, y_val: Any) -> float:
    import torch

    for batch in torch.split(torch.randperm(len(x_train)), 64):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return (model(x_val).argmax(dim=1) == y_val).float().mean().item()


RAY_OVERHEAD_FACTOR = 3.0  # on a 2-core VM, Ray's processes drew about twice what a demo trial did, outside it


def calibrated_limit(config: dict[str, Any], data: tuple[Any, Any, Any, Any]) -> tuple[str, str]:
    """The demo's budget limit and how it was set: ``config["budget"]["limit"]`` as given, or
    ``worth`` times the metered energy of one trial of the space's middle on this machine.

    Example:
        >>> calibrated_limit({"budget": {"limit": "20 mWh"}}, ())
        ('20 mWh', 'as configured')
    """
    budget = config["budget"]
    if budget.get("limit"):
        return str(budget["limit"]), "as configured"
    import torch

    from auditor.meters import process_meter
    from auditor.model.units import JOULES_PER_KWH, Metric, format_quantity

    search, space = config["search"], config["space"]
    meter = process_meter()
    interval = meter.begin(gpus=None, own_thread=True)
    model = _mlp(sum(space["hidden"]) // 2, sum(space["layers"]) // 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=math.sqrt(space["lr"][0] * space["lr"][1]))
    for _ in range(search["epochs"]):
        _train_epoch(model, optimizer, *data)
    kwh = meter.measure(meter.end(interval)).joules / JOULES_PER_KWH
    return f"{budget['worth'] * kwh:.2g} kWh", (f"{budget['worth']} full trials' worth on this machine: one full trial of the space's middle drew "
                                f"{format_quantity(Metric.ENERGY_KWH, kwh)}, metered before the search")


def run_ray_demo(ledger: str, region: str | None = None, config: dict[str, Any] | None = None) -> DemoResult:
    """The same search with Ray Tune (ASHA early stopping) into ``ledger``."""
    import os

    import ray
    import torch
    from auditor.integrations.ray_tune import AuditLoggerCallback, with_audit
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    config = config or load_demo_config()
    search, space, budget = config["search"], config["space"], config["budget"]
    sweep = time.strftime("demo-ray-%Y%m%d-%H%M%S")
    data = two_spirals(search["samples"], search["seed"])
    torch.set_num_threads(1)
    limit, how = calibrated_limit(config, data)
    if "as configured" not in how:  # Ray's own processes around each trial count too (the sweep's idle row)
        limit = f"{float(limit.split()[0]) * RAY_OVERHEAD_FACTOR:.2g} kWh"
        how += (f", x{RAY_OVERHEAD_FACTOR:g} for what Ray's own processes draw around each trial (worker start-up, "
                "raylet, GCS: the experiment's overhead, which the budget counts)")
    _show_forecasts()

    def train(params: dict[str, Any]) -> None:
        torch.set_num_threads(1)
        x_train, y_train, x_val, y_val = data
        model = _mlp(params["hidden"], params["layers"])
        optimizer = torch.optim.Adam(model.parameters(), lr=params["lr"])
        for _ in range(search["epochs"]):
            tune.report({"accuracy": _train_epoch(model, optimizer, x_train, y_train, x_val, y_val)})

    print(f"auditor demo: Ray Tune search of a small MLP on generated data, budget {_shown(limit)} ({budget['mode']}): {how}")
    for name in ("ray", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # trials never started have no results: no need to say so
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        scheduler = ASHAScheduler(max_t=search["epochs"], grace_period=10)
        audit = AuditLoggerCallback(ledger=ledger, budget=limit, mode=budget["mode"], region=region, sweep=sweep)
        tuner = tune.Tuner(
            with_audit(train),
            param_space={
                "hidden": tune.randint(space["hidden"][0], space["hidden"][1] + 1),
                "layers": tune.randint(space["layers"][0], space["layers"][1] + 1),
                "lr": tune.loguniform(*space["lr"]),
            },
            tune_config=tune.TuneConfig(
                num_samples=search["trials"], metric="accuracy", mode="max",
                scheduler=scheduler,
            ),
            run_config=tune.RunConfig(name=sweep, storage_path=os.path.abspath(".auditor/ray_results"),
                                      callbacks=[audit], stop=audit.stopper, verbose=0),
        )
        tuner.fit()
        ran = audit.ledger.count_trials(sweep) if audit.ledger is not None else 0
    finally:
        if started_here:
            ray.shutdown()
    return DemoResult(sweep, ledger, ran, audit.stopped_by_budget)


def run_demo(ledger: str, region: str | None = None, config: dict[str, Any] | None = None) -> DemoResult:
    """Run the demo search into ``ledger`` and return what it did."""
    import optuna
    import torch
    from auditor.integrations.optuna import AuditCallback
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from auditor.meters import meter_notes
    from auditor.model.units import format_range

    config = config or load_demo_config()
    search, space, budget = config["search"], config["space"], config["budget"]
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    x_train, y_train, x_val, y_val = two_spirals(search["samples"], search["seed"])
    sweep = time.strftime("demo-%Y%m%d-%H%M%S")
    limit, how = calibrated_limit(config, (x_train, y_train, x_val, y_val))
    _show_forecasts()

    def objective(trial: optuna.Trial) -> float:
        hidden = trial.suggest_int("hidden", *space["hidden"])
        layers = trial.suggest_int("layers", *space["layers"])
        lr = trial.suggest_float("lr", *space["lr"], log=True)
        model = _mlp(hidden, layers)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        accuracy = 0.0
        for epoch in range(search["epochs"]):
            accuracy = _train_epoch(model, optimizer, x_train, y_train, x_val, y_val)
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return accuracy

    study = optuna.create_study(
        study_name=sweep,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=search["seed"]),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=10),
    )
    audit = AuditCallback(study, ledger=ledger, budget=limit, mode=budget["mode"], region=region, sweep=sweep)
    print(f"auditor demo: Optuna search of a small MLP on generated data, budget {_shown(limit)} ({budget['mode']}): {how}")
    for note in meter_notes():
        print(f"Measuring: {note}")
    columns = (TextColumn("Trials"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[spent]}"), TimeElapsedColumn())
    with Progress(*columns, transient=False, disable=not Console().is_terminal) as progress:  # quiet when piped
        task = progress.add_task("trials", total=search["trials"], spent="")

        def show(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            decision = audit.keeper.guard.last if audit.keeper.guard else None
            metric = audit.budget.limit.metric if audit.budget else None
            spent = format_range(metric, decision.spent, decision.limit) if decision and metric else ""
            progress.update(task, completed=len(study.trials), spent=spent)

        study.optimize(objective, n_trials=search["trials"], callbacks=[audit, show])
    audit.flush()
    return DemoResult(sweep, ledger, len(study.trials), audit.stopped_by_budget)
