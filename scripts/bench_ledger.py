"""Benchmark: trial rows written per second into the ledger, as a sweep writes them.

Each row is one transaction (a finished trial is written on its own, at once). Measured with
one writer and with several writer processes at once, on SQLite and, when a server answers,
on PostgreSQL and MariaDB.

Usage::

    python scripts/bench_ledger.py [--rows 3000] [--writers 4] [--postgres URL] [--mariadb URL]

Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from auditor.ledger import EnergyReading, Ledger, TrialRecord


def _trial(worker: int, i: int) -> TrialRecord:
    return TrialRecord(
        sweep="bench",
        trial_key=f"{worker}-{i}",
        number=i,
        state="complete",
        start_time=1.7e9 + i,
        end_time=1.7e9 + i + 30,
        params={"lr": 10 ** -(i % 5), "layers": i % 8, "optimizer": "adam", "dropout": 0.1},
        objective=[0.5 + (i % 100) / 1000],
        devices=[{"index": 0, "uuid": "GPU-0", "model": "NVIDIA H100 80GB HBM3"}],
        gpu_seconds=30.0,
        energy={"gpu": EnergyReading(9000.0, "counter"), "cpu": EnergyReading(300.0, "estimate-tdp")},
    )


def write_rows(url: str, worker: int, rows: int, start_at: float) -> tuple[float, float]:
    """Write ``rows`` trials, one transaction each; return (start, end) wall times."""
    with Ledger.open(url) as ledger:
        ledger.ensure_sweep("bench", "optuna")
        records = [_trial(worker, i) for i in range(rows)]
        while time.time() < start_at:
            time.sleep(0.001)
        start = time.perf_counter(), time.time()
        for record in records:
            ledger.record_trial(record)
        return start[1], time.time()


def bench(url: str, rows: int, writers: int) -> float:
    """Rows per second over all writers, from the first start to the last end."""
    if writers == 1:
        start, end = write_rows(url, 0, rows, 0.0)
        return rows / (end - start)
    context = multiprocessing.get_context("spawn")
    start_at = time.time() + 3.0  # let every process open the ledger first
    with context.Pool(writers) as pool:
        spans = pool.starmap(write_rows, [(url, w, rows // writers, start_at) for w in range(writers)])
    with Ledger.open(url) as ledger:
        assert ledger.count_trials("bench") == (rows // writers) * writers, "rows lost or doubled"
    return (rows // writers) * writers / (max(e for _, e in spans) - min(s for s, _ in spans))


def fresh_server_database(admin_url: str) -> tuple[str, callable] | None:
    name = f"auditor_bench_{uuid.uuid4().hex[:8]}"
    mysql = admin_url.startswith("mysql")
    quote = "`" if mysql else '"'
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {quote}{name}{quote}"))
    except Exception as exc:  # noqa: BLE001
        print(f"skipping {admin_url}: {str(exc).splitlines()[0]}")
        return None

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {quote}{name}{quote}" + ("" if mysql else " WITH (FORCE)")))
        admin.dispose()

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--mariadb", default="mysql+pymysql://root@127.0.0.1:3306/test")
    args = parser.parse_args()

    print(f"machine: {platform.machine()}, {multiprocessing.cpu_count()} cores, Python {platform.python_version()}")
    print("\n| backend | writers | rows | rows/s |\n| --- | --- | --- | --- |")
    for backend in ("sqlite", "postgresql", "mariadb"):
        for writers in (1, args.writers):
            if backend == "sqlite":
                directory = tempfile.mkdtemp()
                url, drop = str(Path(directory) / "ledger.db"), (lambda: None)
            else:
                made = fresh_server_database(args.postgres if backend == "postgresql" else args.mariadb)
                if made is None:
                    break
                url, drop = made
            try:
                rate = bench(url, args.rows, writers)
            finally:
                drop()
            print(f"| {backend} | {writers} | {args.rows // writers * writers} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
