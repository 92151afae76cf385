"""Trials that run in this process, on a simulated GPU and a real SQLite ledger."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from auditor.ledger import Ledger, TrialState
from auditor.meters.sampler import Meter
from auditor.meters.simulated import PowerProfile, SimulatedGpuSource
from auditor.model.carbon import CarbonModel
from auditor.model.regions import resolve_region
from auditor.search.figures import interval_so_far, trial_figures
from auditor.search.local import LocalTrials
from auditor.search.recorder import Recorder


def test_trials_and_the_idle_energy_between_them_add_up_to_the_counter(tmp_path: Path) -> None:
    meter = Meter([SimulatedGpuSource([PowerProfile.constant(200.0)])]).start()
    recorder = Recorder(str(tmp_path / "l.db"), meter, "s", "optuna")
    trials = LocalTrials(recorder, devices="all", idle_key="idle/s")
    for number in range(3):
        trials.begin(number, trial_key=f"s/{number}", number=number)
        time.sleep(0.2)
        trials.end(number, trial_key=f"s/{number}", name=None, state=TrialState.COMPLETE, number=number)
        time.sleep(0.1)
    assert recorder.flush()
    meter.stop()  # its last reading: nothing accrues after it, so the sums can be exact
    trials.record_idle()
    assert recorder.flush()
    recorder.close()
    with Ledger.open(tmp_path / "l.db") as ledger:
        records = ledger.trials("s", include_idle=True)
    assert sorted(r.state.value for r in records) == ["complete"] * 3 + ["idle"]
    total = sum(r.energy["gpu"].joules for r in records)
    assert total == pytest.approx(sum(meter.counter_deltas().values()), rel=1e-9)
    assert all(trials.recorded(n) for n in range(3)) and not trials.recorded(3)
    assert trials.end(99, trial_key="s/99", name=None, state=TrialState.COMPLETE) is None  # never begun here


def test_a_trial_seen_only_after_it_ran_is_measured_from_idle_energy(tmp_path: Path) -> None:
    meter = Meter([SimulatedGpuSource([PowerProfile.constant(300.0)])]).start()
    recorder = Recorder(str(tmp_path / "l.db"), meter, "s", "optuna")
    start = time.time()
    time.sleep(0.5)
    trials = LocalTrials(recorder, devices="all")
    trials.record_past("early", start, time.time(), trial_key="s/0", name=None, state=TrialState.COMPLETE, number=0)
    assert recorder.flush()
    recorder.close()
    meter.stop()
    with Ledger.open(tmp_path / "l.db") as ledger:
        [record] = ledger.trials("s")
    assert record.energy["gpu"].joules == pytest.approx(300.0 * 0.5, rel=0.3)
    assert trials.recorded("early")


def test_the_figures_a_user_sees_follow_the_model() -> None:
    meter = Meter([SimulatedGpuSource([PowerProfile.constant(360.0)])]).start()
    interval = meter.begin(gpus="all")
    time.sleep(0.3)
    meter.end(interval)
    meter.flush()
    meter.stop()
    joules, gpu_seconds = interval_so_far(interval)
    figures = trial_figures(joules, gpu_seconds, CarbonModel(resolve_region("FR"), pue=1.2))
    assert figures["region"] == "FR" and figures["energy_kwh"] == pytest.approx(joules / 3.6e6)
    assert figures["co2e_kg"] == pytest.approx(figures["energy_kwh"] * 1.2 * resolve_region("FR").g_co2e_per_kwh / 1000)
    assert figures["gpu_hours"] == pytest.approx(gpu_seconds / 3600) and gpu_seconds > 0.25


def test_the_energy_between_trials_is_counted_once_as_it_accrues(tmp_path: Path) -> None:
    """The report counts the idle energy between trials; the budget's tally does too, before its
    row is written and after (the written row is left out for the newer figure)."""
    from auditor.budget import Budget
    from auditor.budget.guard import BudgetGuard

    meter = Meter([SimulatedGpuSource([PowerProfile.constant(200.0)])]).start()
    recorder = Recorder(str(tmp_path / "l.db"), meter, "s", "optuna")
    trials = LocalTrials(recorder, devices="all", idle_key="idle/me")
    trials.begin(0, trial_key="s/0", number=0)
    time.sleep(0.2)
    trials.end(0, trial_key="s/0", name=None, state=TrialState.COMPLETE, number=0)
    time.sleep(0.3)  # idle
    assert recorder.flush()
    guard = BudgetGuard(Budget.parse("1 kWh"), CarbonModel(), recorder.ledger, "s")
    before = guard.spent(trials.pending_usage()).energy_kwh
    trials.record_idle()
    assert recorder.flush()
    after = guard.spent(trials.pending_usage()).energy_kwh
    recorder.close()
    meter.stop()
    with Ledger.open(tmp_path / "l.db") as ledger:
        total = ledger.usage("s").energy_kwh
    assert before == pytest.approx(total, rel=0.02) and after == pytest.approx(total, rel=0.02)
    assert before > 1.3 * sum(t.energy_kwh for t in Ledger.open(tmp_path / "l.db").trials("s"))  # idle is in it
