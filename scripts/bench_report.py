"""Benchmark: `audit report` over a ledger of 1,000,000 trials in 200 sweeps, in each format.

Builds the ledger once (SQLite, bulk inserts), then times `audit report --format F` in a fresh
process for each format and reads its peak memory (ru_maxrss of the child).
Targets on a 2-core machine: table and json in at most 3 s and 1 GB.

Usage::

    python scripts/bench_report.py [--trials 1000000] [--sweeps 200] [--ledger PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, insert

from auditor.ledger import Ledger, schema

STATES = ["complete"] * 6 + ["pruned"] * 3 + ["failed"]
FORMATS = ["table", "json", "markdown", "csv", "statement", "html"]


def build(path: Path, trials: int, sweeps: int) -> float:
    started = time.perf_counter()
    Ledger.open(path).close()
    engine = create_engine(f"sqlite:///{path}")
    rng = random.Random(0)
    devices = json.dumps([{"key": "gpu:GPU-0", "index": 0, "model": "NVIDIA H100 80GB HBM3"}])
    with engine.begin() as conn:
        conn.execute(insert(schema.sweeps), [
            {"id": i + 1, "name": f"sweep-{i:03d}", "framework": "optuna" if i % 2 else "ray", "created_at": 1.7e9,
             "host": "bench", "attrs": "{}"} for i in range(sweeps)])
    batch = []
    for n in range(trials):
        start = 1.7e9 + n * 30.0
        gpu_j = 25.0 * rng.uniform(200, 700)
        value = rng.random()
        batch.append({
            "sweep_id": n % sweeps + 1, "trial_key": str(n), "number": n // sweeps, "name": None,
            "state": STATES[n % len(STATES)], "params": json.dumps({"lr": rng.random(), "layers": n % 5}),
            "objective": json.dumps([value]), "value": value, "start_time": start, "end_time": start + 25.0, "host": "bench",
            "devices": devices, "gpu_seconds": 25.0, "gpu_energy_j": gpu_j, "energy_j": gpu_j + 110.0, "measured_energy_j": gpu_j,
            "gpu_energy_method": "counter", "cpu_energy_j": 100.0, "cpu_energy_method": "estimate-tdp",
            "memory_energy_j": 10.0, "memory_energy_method": "estimate", "flags": "[]", "is_final": n == trials - 1,
            "stopped_by_budget": False, "recorded_at": start + 25.0,
        })
        if len(batch) == 50_000:
            with engine.begin() as conn:
                conn.execute(insert(schema.trials), batch)
            batch = []
    if batch:
        with engine.begin() as conn:
            conn.execute(insert(schema.trials), batch)
    engine.dispose()
    return time.perf_counter() - started


def time_report(path: Path, output: str) -> tuple[float, float]:
    audit = str(Path(sys.executable).parent / "audit")
    out = Path(tempfile.mkdtemp()) / f"report.{output}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run([audit, "report", "--ledger", str(path), "--region", "DE", "--format", output, "--out", str(out)],
                   check=True, capture_output=True)
    took = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return took, max(peak, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1_000_000)
    parser.add_argument("--sweeps", type=int, default=200)
    parser.add_argument("--ledger", type=Path, default=None, help="reuse (or build) the ledger here")
    args = parser.parse_args()
    path = args.ledger or Path(tempfile.mkdtemp()) / "ledger.db"
    if not path.exists():
        print(f"building {args.trials:,} trials in {args.sweeps} sweeps: {build(path, args.trials, args.sweeps):.0f} s")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; ledger {path.stat().st_size / 2**20:.0f} MiB")
    print("\n| format | seconds | peak memory (MiB) |\n| --- | --- | --- |")
    for output in FORMATS:
        took, peak = time_report(path, output)
        print(f"| {output} | {took:.2f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
