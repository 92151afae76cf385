"""A budget counts each trial once: queued in this process, being written, or in the ledger
(a trial that had just ended was counted twice with n_jobs=2: once as pending, once in the
ledger, or its heartbeat row beside its final figures)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from auditor.budget import Budget
from auditor.budget.guard import BudgetGuard
from auditor.ledger import Ledger, TrialState
from auditor.meters.sampler import Meter
from auditor.meters.simulated import PowerProfile, SimulatedGpuSource
from auditor.model.carbon import CarbonModel
from auditor.search.recorder import Recorder


def test_a_trial_being_written_is_counted_once(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    meter = Meter([SimulatedGpuSource([PowerProfile.constant(300.0)])]).start()
    recorder = Recorder(str(path), meter, "s", "optuna", timeout_s=30.0)
    recorder.heartbeat_s = 0.05  # the trial's running row reaches the ledger with its energy so far
    guard = BudgetGuard(Budget.parse("1 kWh"), CarbonModel(), recorder.ledger, "s")
    interval = meter.begin(gpus="all")
    wall_start = time.time()
    recorder.start(interval, trial_key="s/0", wall_start=wall_start)
    time.sleep(0.5)
    assert recorder.ledger is not None and recorder.ledger.usage("s").energy_kwh > 0  # a heartbeat row is there

    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # the trial's final record waits to be written...
    meter.end(interval)
    recorder.submit(interval, trial_key="s/0", name=None, state=TrialState.COMPLETE, wall_start=wall_start,
                    wall_end=time.time())
    threading.Timer(0.6, blocker.rollback).start()  # ...and is written part-way through the tallies below
    seen = []
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        pending = recorder.pending_usage()
        time.sleep(0.01)  # the final row may be written meanwhile: its key leaves it out
        seen.append(guard.spent(pending).energy_kwh)
    assert recorder.flush(10)
    final = Ledger.open(path).usage("s")
    recorder.close()
    meter.stop()
    assert final.trials == 1
    assert max(seen) <= final.energy_kwh * (1 + 1e-9), f"counted {max(seen) / final.energy_kwh:.2f} times"
    assert min(seen[len(seen) // 2:]) >= final.energy_kwh * 0.999  # once written, all of it
