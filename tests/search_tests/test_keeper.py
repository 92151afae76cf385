"""The budget as every plugin keeps it, on a real SQLite ledger."""

from __future__ import annotations

import pickle
from pathlib import Path

from auditor.budget import Budget
from auditor.ledger import EnergyReading, Ledger, TrialRecord, TrialState, Usage
from auditor.model.carbon import CarbonModel
from auditor.search.keeper import BudgetKeeper


def trial(key: str, kwh: float, state: TrialState = TrialState.COMPLETE, flags: list[str] | None = None) -> TrialRecord:
    return TrialRecord(sweep="s", trial_key=key, state=state, start_time=0.0, end_time=1.0,
                       energy={"cpu": EnergyReading(kwh * 3.6e6, "rapl")}, flags=flags or [])


def test_a_stop_is_remembered_and_a_hard_stop_stops_running_trials(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        ledger.ensure_sweep("s", "optuna")
        keeper = BudgetKeeper(Budget.parse("1 kWh", mode="hard"), CarbonModel(), reserve=False)
        keeper.open(ledger, "s")
        assert keeper.decide(Usage(0.3, 0, 1), after="trial 0").action.value == "go"  # type: ignore[union-attr]
        assert not keeper.hard_stop_now(lambda: Usage(0.3, 0, 1))
        ledger.record_trial(trial("0", 1.2))
        assert not keeper.hard_stop_now(lambda: None)  # read at most every half second
        keeper._hard_checked_at = 0.0
        assert keeper.hard_stop_now(lambda: None)
        assert keeper.stopped and keeper.hard_stopped


def test_only_finished_trials_feed_the_forecast(tmp_path: Path) -> None:
    """A heartbeat's partial figures or the idle row would make the next trial look cheaper."""
    with Ledger.open(tmp_path / "l.db") as ledger:
        keeper = BudgetKeeper(Budget.parse("10 kWh"), CarbonModel(), reserve=False)
        keeper.open(ledger, "s")
        keeper.observe(trial("0", 2.0))
        keeper.observe(trial("1", 0.1, TrialState.RUNNING, ["heartbeat"]))
        keeper.observe(trial("idle", 0.01, TrialState.IDLE))
        forecast = keeper.guard.forecast()  # type: ignore[union-attr]
        assert forecast is not None and forecast.energy_kwh == 2.0


def test_a_trial_without_energy_stops_a_budget_failing_closed(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        keeper = BudgetKeeper(Budget.parse("10 kWh", fail="closed"), CarbonModel(), reserve=False)
        keeper.open(ledger, "s")
        keeper.observe(trial("0", 0.0, flags=["energy-missing"]))
        decision = keeper.decide(after="trial 0")
        assert decision is not None and decision.action.stops and keeper.stopped


def test_reservations_are_made_and_released(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        ledger.ensure_sweep("s", "optuna")
        keeper = BudgetKeeper(Budget.parse("10 kWh"), CarbonModel(), reserve=True)
        keeper.open(ledger, "s")
        keeper.observe(trial("0", 1.0))
        keeper.decide(after="trial 0", holder="host:1:x")
        assert ledger.reservation_holders() == ["host:1:x"]
        keeper.release("host:1:x")
        assert ledger.reservation_holders() == []


def test_without_a_budget_nothing_is_decided_or_stopped() -> None:
    keeper = BudgetKeeper(None, CarbonModel())
    keeper.open(None, "s")
    assert keeper.decide(after="trial 0") is None
    assert not keeper.hard_stop_now(lambda: None) and not keeper.stopped
    keeper.release("anyone")  # nothing to release, nothing raised


def test_a_pickled_keeper_keeps_its_stop_and_leaves_its_connection(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        keeper = BudgetKeeper(Budget.parse("1 kWh"), CarbonModel(), reserve=False)
        keeper.open(ledger, "s")
        ledger.ensure_sweep("s", "ray")
        ledger.record_trial(trial("0", 2.0))
        keeper.decide(after="trial 0")
        restored = pickle.loads(pickle.dumps(keeper))
        assert restored.stopped and restored.guard is None
        restored.open(ledger, "s")
        assert restored.guard is not None and restored.guard.ledger is ledger
