"""8 writer processes x 500 trials into one ledger, on SQLite and on PostgreSQL: exactly 4,000
rows, none lost or doubled. The throughput is printed (see docs/reliability.md)."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from auditor.ledger import EnergyReading, Ledger, TrialRecord

WORKERS, TRIALS = 8, 500


def writer(url: str, worker: int) -> None:
    with Ledger.open(url) as ledger:
        ledger.ensure_sweep("stress", framework="optuna")
        for i in range(TRIALS):
            ledger.record_trial(TrialRecord(
                sweep="stress", trial_key=f"{worker}/{i}", number=i, state="complete", start_time=float(i),
                end_time=i + 1.0, gpu_seconds=1.0, params={"worker": worker, "i": i},
                energy={"gpu": EnergyReading(100.0, "counter")},
            ))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_eight_processes_five_hundred_trials_each(backend: str, tmp_path, request: pytest.FixtureRequest) -> None:
    url = str(tmp_path / "ledger.db") if backend == "sqlite" else request.getfixturevalue("postgres_url")
    Ledger.open(url).close()
    context = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    processes = [context.Process(target=writer, args=(url, w)) for w in range(WORKERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
    took = time.perf_counter() - started
    assert all(p.exitcode == 0 for p in processes)
    with Ledger.open(url) as ledger:
        trials = ledger.trials("stress")
        usage = ledger.usage("stress")
    keys = [t.trial_key for t in trials]
    assert len(keys) == WORKERS * TRIALS and len(set(keys)) == len(keys)
    assert usage.energy_kwh == pytest.approx(WORKERS * TRIALS * 100.0 / 3.6e6)
    print(f"{backend}: {WORKERS * TRIALS} rows by {WORKERS} processes in {took:.1f} s ({WORKERS * TRIALS / took:,.0f} rows/s)")
