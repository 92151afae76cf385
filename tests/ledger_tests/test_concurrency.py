"""Several processes writing into one ledger at once: no row lost, none doubled."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from auditor.ledger import EnergyReading, Ledger, TrialRecord

WORKERS = 4
TRIALS_PER_WORKER = 60


def write_trials(url: str, worker: int, count: int) -> int:
    """One worker process: open the ledger (racing the others to create it) and write trials."""
    with Ledger.open(url) as ledger:
        ledger.ensure_sweep("shared", framework="optuna")
        for i in range(count):
            ledger.record_trial(
                TrialRecord(
                    sweep="shared",
                    trial_key=f"{worker}-{i}",
                    number=worker * count + i,
                    state="complete",
                    start_time=float(i),
                    end_time=float(i) + 1.0,
                    gpu_seconds=1.0,
                    energy={"gpu": EnergyReading(10.0, "counter")},
                )
            )
    return count


def run_workers(url: str) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(WORKERS) as pool:
        written = pool.starmap(write_trials, [(url, w, TRIALS_PER_WORKER) for w in range(WORKERS)])
    assert written == [TRIALS_PER_WORKER] * WORKERS


@pytest.mark.slow
def test_concurrent_writers_lose_nothing(ledger_url: str) -> None:
    run_workers(ledger_url)
    with Ledger.open(ledger_url) as ledger:
        trials = ledger.trials("shared")
        usage = ledger.usage("shared")
        assert len(ledger.sweeps()) == 1
    keys = [t.trial_key for t in trials]
    assert len(keys) == WORKERS * TRIALS_PER_WORKER
    assert len(set(keys)) == len(keys)
    assert usage.energy_kwh == pytest.approx(WORKERS * TRIALS_PER_WORKER * 10.0 / 3.6e6)


@pytest.mark.slow
def test_concurrent_writers_replaying_the_same_trials_do_not_double_them(tmp_path: Path) -> None:
    url = str(tmp_path / "ledger.db")
    context = multiprocessing.get_context("spawn")
    with context.Pool(WORKERS) as pool:
        pool.starmap(write_trials, [(url, 0, TRIALS_PER_WORKER)] * WORKERS)
    with Ledger.open(url) as ledger:
        assert ledger.count_trials() == TRIALS_PER_WORKER
