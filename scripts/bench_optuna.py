"""Benchmark: what the Optuna callback adds to a search, end to end and per trial.

Runs the same search with and without ``AuditCallback``, alternating, ``--repeats`` times
each, on each Optuna storage users run: in memory (``--trials`` trials), and SQLite, Journal
(a file) and PostgreSQL (``--rdb-trials``, as each trial is a handful of commits there; a new
database or file each run; PostgreSQL skipped, and said, where no server answers at
``--postgres``). A trivial objective and RandomSampler, so that the sampler's own cost does not
grow with the trial count. What a user sees:

- end to end: from before the callback is built (plain: before ``create_study``) to after
  ``audit.flush()`` returns with every trial in the SQLite ledger (checked), per trial;
- set-up: from that start to the end of the first trial (the plugin opens its ledger then);
- the final flush: how long ``audit.flush()`` waits for the writer after ``optimize`` returns;
- steady state: the median time from one trial's start to the next's.

CodeCarbon's ``OfflineEmissionsTracker`` started and stopped around each trial is the
comparison row when codecarbon is installed (``pip install codecarbon``; a tenth of the trials).

Usage::

    python scripts/bench_optuna.py [--trials 2000] [--rdb-trials 150] [--repeats 3]
                                   [--storages memory,sqlite,journal,postgresql] [--no-lean]
"""

from __future__ import annotations

import argparse
import itertools
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


def make_storage(kind: str, directory: Path, tag: str, postgres: str) -> object:
    """A new, empty Optuna storage of ``kind`` (a file or a database of its own)."""
    if kind == "memory":
        return None
    if kind == "sqlite":
        return optuna.storages.RDBStorage(f"sqlite:///{directory / f'optuna-{tag}.db'}")
    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(directory / f"journal-{tag}.log")))
    import sqlalchemy

    admin = sqlalchemy.create_engine(postgres, isolation_level="AUTOCOMMIT")
    name = f"bench_{tag}".replace("-", "_")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return optuna.storages.RDBStorage(postgres.rsplit("/", 1)[0] + f"/{name}")


def run(trials: int, runs: Runs, ledger: Path | None = None, tracker=None, storage: object = None,
        attributes: bool = True) -> None:
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
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), storage=storage)
    if ledger is not None:  # as the README says: the study first, watched from its first trial
        from auditor.integrations.optuna import AuditCallback

        audit = AuditCallback(study, ledger=str(ledger), region="DE", **({} if attributes else {"attributes": False}))
        callbacks = [audit]
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
    runs.gaps += [b - a for a, b in itertools.pairwise(starts)]


def import_seconds(statement: str) -> float:
    """Median wall time of a fresh interpreter running ``statement``, over 5 runs."""
    times = []
    for _ in range(5):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def postgres_answers(url: str) -> str | None:
    """None when the server at ``url`` answers, else why not."""
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - the benchmark says why and goes on
        return str(exc).splitlines()[0]


def row(name: str, runs: Runs, trials: int, base_total: float, base_gap: float) -> str:
    total = statistics.median(runs.totals) / trials * 1000
    gap = statistics.median(runs.gaps) * 1000
    return (f"| {name} | {total:.3f} | {total - base_total:+.3f} ms ({(total / base_total - 1) * 100:+.0f} %) | "
            f"{statistics.median(runs.setups) * 1000:.1f} | {statistics.median(runs.flushes) * 1000:.1f} | {gap:.3f} | "
            f"{gap - base_gap:+.3f} ms ({(gap / base_gap - 1) * 100:+.0f} %) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000, help="trials a search, in memory")
    parser.add_argument("--rdb-trials", type=int, default=150, help="trials a search on SQLite, Journal, PostgreSQL")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--storages", default="memory,sqlite,journal,postgresql")
    parser.add_argument("--no-lean", dest="lean", action="store_false",
                        help="leave out the AuditCallback(attributes=False) rows (for a tree without it)")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
                        help="a server where the benchmark may create databases")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    try:
        from codecarbon import OfflineEmissionsTracker
    except ImportError:
        OfflineEmissionsTracker = None  # noqa: N806

    directory = Path(tempfile.mkdtemp())
    kinds = [k.strip() for k in args.storages.split(",") if k.strip()]
    skipped = {}
    if "postgresql" in kinds and (why := postgres_answers(args.postgres)):
        skipped["postgresql"] = why
        kinds.remove("postgresql")
    run(20, Runs())  # warm up Optuna's own imports and caches
    results: dict[str, tuple[Runs, Runs, Runs, int]] = {}
    carbon = Runs()
    for kind in kinds:
        trials = args.trials if kind == "memory" else args.rdb_trials
        plain, audited, lean = Runs(), Runs(), Runs()
        variants = ["plain", "audited"] + (["lean"] if kind != "memory" and args.lean else [])
        for repeat in range(args.repeats):
            for variant in variants if repeat % 2 == 0 else variants[::-1]:
                storage = make_storage(kind, directory, f"{kind}-{variant}-{repeat}", args.postgres)
                if variant == "plain":
                    run(trials, plain, storage=storage)
                else:
                    run(trials, audited if variant == "audited" else lean, storage=storage, attributes=variant == "audited",
                        ledger=directory / f"ledger-{kind}-{variant}-{repeat}.db")
            if kind == "memory" and OfflineEmissionsTracker is not None:
                def tracker():
                    return OfflineEmissionsTracker(country_iso_code="DEU", save_to_file=False, log_level="error",
                                                   output_dir=str(directory))
                run(max(args.trials // 10, 50), carbon, tracker=tracker)
        results[kind] = (plain, audited, lean, trials)
    imports = {name: import_seconds(statement) for name, statement in (
        ("optuna", "import optuna"), ("auditor", "import optuna, auditor.integrations.optuna"))}

    print(f"machine: {platform.machine()}, {platform.platform()}, Python {platform.python_version()}, optuna {optuna.__version__}")
    print(f"{args.repeats} repeats a variant, alternating; in memory {args.trials:,} trials a search, "
          f"SQLite/Journal/PostgreSQL {args.rdb_trials:,}; the ledger is SQLite (a file) in every case\n")
    print("| storage, variant | end to end ms/trial | added end to end | set-up to the first trial's end (ms) | final flush (ms) "
          "| steady median ms/trial | added (median) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    names = {"memory": "in memory", "sqlite": "SQLite", "journal": "Journal (file)", "postgresql": "PostgreSQL"}
    for kind, (plain, audited, lean, trials) in results.items():
        base_total = statistics.median(plain.totals) / trials * 1000
        base_gap = statistics.median(plain.gaps) * 1000
        print(row(f"{names[kind]}: plain Optuna", plain, trials, base_total, base_gap))
        print(row(f"{names[kind]}: AuditCallback", audited, trials, base_total, base_gap))
        if lean.totals:
            print(row(f"{names[kind]}: AuditCallback(attributes=False)", lean, trials, base_total, base_gap))
        if kind == "memory" and carbon.totals:
            print(row("in memory: CodeCarbon tracker per trial", carbon, max(args.trials // 10, 50), base_total, base_gap))
    for kind, why in skipped.items():
        print(f"\n{names[kind]} not measured: no server answers at {args.postgres} ({why})")
    print(f"\nimport in a fresh interpreter: optuna {imports['optuna']:.2f} s, optuna + the plugin {imports['auditor']:.2f} s "
          f"({imports['auditor'] - imports['optuna']:+.2f} s, once per process)")


if __name__ == "__main__":
    main()
