"""Benchmark: what the Optuna callback adds to each trial.

Runs the same search three ways, in-memory Optuna storage, a trivial objective, RandomSampler
(so the sampler's own cost does not grow with the trial count), 2,000 trials each:

- plain Optuna;
- with ``AuditCallback`` (the process meter running, records written to a SQLite ledger);
- with each trial wrapped in CodeCarbon's ``OfflineEmissionsTracker`` (when codecarbon is
  installed: ``pip install codecarbon``).

Reports the median and mean wall time per trial and the difference to plain Optuna.
Target: the callback adds at most 0.5 ms per trial.

Usage::

    python scripts/bench_optuna.py [--trials 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import tempfile
import time
from pathlib import Path

import optuna


def run(trials: int, callbacks: list, wrap=None) -> list[float]:
    """Per-trial wall times (from one trial's end to the next's) of one search."""
    ends: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -10, 10)
        if wrap is None:
            return x * x
        with wrap():
            return x * x

    def mark(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        ends.append(time.perf_counter())

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials, callbacks=[*callbacks, mark])
    times = [b - a for a, b in zip([start, *ends], ends)]
    return times[10:]  # leave out the warm-up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("codecarbon").setLevel(logging.ERROR)

    from auditor.integrations.optuna import AuditCallback

    variants: dict[str, list[float]] = {"plain Optuna": [], "AuditCallback": [], "CodeCarbon tracker per trial": []}
    try:
        from codecarbon import OfflineEmissionsTracker
    except ImportError:
        OfflineEmissionsTracker = None  # noqa: N806
        del variants["CodeCarbon tracker per trial"]
    directory = Path(tempfile.mkdtemp())
    for repeat in range(args.repeats):
        variants["plain Optuna"] += run(args.trials, [])
        audit = AuditCallback(ledger=str(directory / f"ledger-{repeat}.db"), region="DE")
        variants["AuditCallback"] += run(args.trials, [audit])
        audit.flush()
        if OfflineEmissionsTracker is not None:
            def tracker():
                return OfflineEmissionsTracker(country_iso_code="DEU", save_to_file=False, log_level="error",
                                               output_dir=str(directory))
            variants["CodeCarbon tracker per trial"] += run(max(args.trials // 10, 50), [], wrap=tracker)

    base = statistics.median(variants["plain Optuna"])
    print(f"machine: {platform.machine()}, {platform.platform()}, Python {platform.python_version()}, optuna {optuna.__version__}")
    print(f"{args.trials:,} trials x {args.repeats} repeats (CodeCarbon: {max(args.trials // 10, 50)} trials x {args.repeats})\n")
    print("| variant | median ms/trial | mean ms/trial | added (median) |")
    print("| --- | --- | --- | --- |")
    for name, times in variants.items():
        median = statistics.median(times) * 1000
        print(f"| {name} | {median:.3f} | {statistics.mean(times) * 1000:.3f} | {median - base * 1000:+.3f} ms |")


if __name__ == "__main__":
    main()
