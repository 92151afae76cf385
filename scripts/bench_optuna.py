"""Benchmark: what the Optuna callback adds to a search, end to end and per trial.

Runs the same search with and without ``AuditCallback``, alternating, ``--repeats`` times
each: in-memory Optuna storage, a trivial objective, RandomSampler (so the sampler's own cost
does not grow with the trial count), ``--trials`` trials. What a user sees:

- end to end: from before the callback is built (plain: before ``create_study``) to after
  ``audit.flush()`` returns with every trial in the SQLite ledger (checked), per trial;
- set-up: from that start to the end of the first trial (the plugin opens its ledger then);
- the final flush: how long ``audit.flush()`` waits for the writer after ``optimize`` returns;
- steady state: the median time from one trial's start to the next's.

CodeCarbon's ``OfflineEmissionsTracker`` started and stopped around each trial is the
comparison row when codecarbon is installed (``pip install codecarbon``; a tenth of the trials).

Usage::

    python scripts/bench_optuna.py [--trials 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna


@dataclass
class Runs:
    """The figures of one variant over its repeats, in seconds."""

    totals: list[float] = field(default_factory=list)
    setups: list[float] = field(default_factory=list)
    flushes: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)


def run(trials: int, runs: Runs, ledger: Path | None = None, tracker=None) -> None:
    """One search; its figures are added to ``runs``."""
    starts: list[float] = []
    first_end: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        if len(starts) == 1 and not first_end:
            first_end.append(time.perf_counter())  # the first trial and what came after it, before this one
        starts.append(time.perf_counter())
        x = trial.suggest_float("x", -10, 10)
        if tracker is None:
            return x * x
        with tracker():
            return x * x

    began = time.perf_counter()
    callbacks = []
    if ledger is not None:
        from auditor.integrations.optuna import AuditCallback

        audit = AuditCallback(ledger=str(ledger), region="DE")
        callbacks = [audit]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=trials, callbacks=callbacks)
    optimized = time.perf_counter()
    if ledger is not None:
        audit.flush()
    ended = time.perf_counter()
    if ledger is not None:
        assert audit.ledger.count_trials(study.study_name) == trials, "the ledger misses trials"
        audit.close()
    runs.totals.append(ended - began)
    runs.setups.append(first_end[0] - began)
    runs.flushes.append(ended - optimized)
    runs.gaps += [b - a for a, b in zip(starts[10:], starts[11:])]


def import_seconds(statement: str) -> float:
    """Median wall time of a fresh interpreter running ``statement``, over 5 runs."""
    times = []
    for _ in range(5):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    try:
        from codecarbon import OfflineEmissionsTracker
    except ImportError:
        OfflineEmissionsTracker = None  # noqa: N806

    directory = Path(tempfile.mkdtemp())
    plain, audited, carbon = Runs(), Runs(), Runs()
    run(20, Runs())  # warm up Optuna's own imports and caches
    for repeat in range(args.repeats):
        for variant in ("plain", "audited") if repeat % 2 == 0 else ("audited", "plain"):
            if variant == "plain":
                run(args.trials, plain)
            else:
                run(args.trials, audited, ledger=directory / f"ledger-{repeat}.db")
        if OfflineEmissionsTracker is not None:
            def tracker():
                return OfflineEmissionsTracker(country_iso_code="DEU", save_to_file=False, log_level="error",
                                               output_dir=str(directory))
            run(max(args.trials // 10, 50), carbon, tracker=tracker)
    imports = {name: import_seconds(statement) for name, statement in (
        ("optuna", "import optuna"), ("auditor", "import optuna, auditor.integrations.optuna"))}

    print(f"machine: {platform.machine()}, {platform.platform()}, Python {platform.python_version()}, optuna {optuna.__version__}")
    print(f"{args.trials:,} trials x {args.repeats} repeats, alternating (CodeCarbon: {max(args.trials // 10, 50)} trials x {args.repeats})\n")
    print("| variant | end to end ms/trial | added end to end | set-up to the first trial's end (ms) | final flush (ms) | steady median ms/trial | added (median) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    base_total = statistics.median(plain.totals) / args.trials * 1000
    base_gap = statistics.median(plain.gaps) * 1000
    rows = [("plain Optuna", plain, args.trials), ("AuditCallback", audited, args.trials)]
    if carbon.totals:
        rows.append(("CodeCarbon tracker per trial", carbon, max(args.trials // 10, 50)))
    for name, runs, trials in rows:
        total = statistics.median(runs.totals) / trials * 1000
        gap = statistics.median(runs.gaps) * 1000
        print(f"| {name} | {total:.3f} | {total - base_total:+.3f} ms | {statistics.median(runs.setups) * 1000:.1f} | "
              f"{statistics.median(runs.flushes) * 1000:.1f} | {gap:.3f} | {gap - base_gap:+.3f} ms |")
    print(f"\nimport in a fresh interpreter: optuna {imports['optuna']:.2f} s, optuna + the plugin {imports['auditor']:.2f} s "
          f"({imports['auditor'] - imports['optuna']:+.2f} s, once per process)")


if __name__ == "__main__":
    main()
