"""4 worker processes sharing one budget, without and with reservations in the ledger: the
overshoot of each (printed; see docs/reliability.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from auditor.ledger import Ledger

WORKER = Path(__file__).resolve().parents[1] / "integrations_tests" / "optuna_worker.py"
BUDGET_J = 8.0


def overshoot(tmp_path: Path, reserve: bool) -> tuple[float, float]:
    ledger, storage = str(tmp_path / f"ledger-{reserve}.db"), str(tmp_path / f"journal-{reserve}.log")
    workers = [
        subprocess.Popen([sys.executable, str(WORKER), storage, ledger, "shared", f"{BUDGET_J / 3.6e6} kWh", "0.05",
                          "1" if reserve else "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err[-2000:]
    with Ledger.open(ledger) as store:
        energies = [t.energy_joules for t in store.trials("shared")]
    return sum(energies) - BUDGET_J, max(energies)


@pytest.mark.slow
def test_reservations_bound_the_overshoot_of_four_workers(tmp_path: Path) -> None:
    before, largest_before = overshoot(tmp_path, reserve=False)
    after, largest = overshoot(tmp_path, reserve=True)
    print(f"overshoot of 4 workers on a {BUDGET_J} J budget: {before:.3f} J without reservations, "
          f"{after:.3f} J with (largest trial {max(largest, largest_before):.3f} J)")
    assert before <= 4 * largest_before  # at most one trial per worker
    assert after < before  # reservations help
    assert after <= 2 * largest  # bounded by the forecast's error, not by the number of workers
