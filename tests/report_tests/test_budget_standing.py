"""Every format says where each sweep stands against its budget, whatever the mode, and a
finished sweep gets no forecast, whatever window the report looks through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditor.budget.limits import Budget
from auditor.ledger import BudgetEvent, Ledger, TrialRecord
from auditor.meters.base import EnergyReading
from auditor.search.records import budget_record


def _sweep(path: Path, name: str, budget: str, mode: str, trials: int, joules: float, planned: int | None = None) -> None:
    with Ledger.open(path) as store:
        attrs = {"budget": budget_record(Budget.parse(budget, mode=mode))}
        if planned:
            attrs["planned_trials"] = planned
        store.ensure_sweep(name, framework="optuna", attrs=attrs)
        for i in range(trials):
            store.record_trial(TrialRecord(sweep=name, trial_key=f"{name}/{i}", number=i, state="complete",
                                           start_time=1000.0 + i, end_time=1000.5 + i, params={"x": i},
                                           energy={"cpu": EnergyReading(joules, "estimate-tdp")}))


def test_a_warn_budget_passed_14_times_over_is_in_every_format(audit, tmp_path: Path) -> None:
    ledger = tmp_path / "l.db"
    _sweep(ledger, "warned", "20 mWh", "warn", trials=10, joules=2.9e-4 * 3.6e6 / 10)  # 290 mWh of 20
    wanted = "warned: budget 20 mWh (warn): 1450% spent, 14.5 times its limit (warn only: nothing was stopped)"
    table = audit("report", "--ledger", str(ledger))
    assert table.code == 0 and wanted in " ".join(table.out.split())
    markdown = audit("report", "--ledger", str(ledger), "--format", "markdown").out
    assert wanted in markdown
    statement = audit("report", "--ledger", str(ledger), "--format", "statement").out
    assert "budget 20 mWh (warn): 1450\\% spent" in statement and "budget 20 mWh (warn): 1450% spent" in statement
    sweeps = audit("sweeps", "--ledger", str(ledger)).out
    assert "1450% spent" in sweeps


def test_a_budget_within_its_limit_is_said_too(audit, tmp_path: Path) -> None:
    ledger = tmp_path / "l.db"
    _sweep(ledger, "calm", "20 mWh", "stop-new", trials=4, joules=2e-3 * 3600)  # 4 x 2 mWh = 8 mWh of 20
    out = " ".join(audit("report", "--ledger", str(ledger)).out.split())
    assert "calm: budget 20 mWh (stop-new): 40% spent." in out


@pytest.mark.parametrize("since", [None, "2030-01-01"])
def test_a_sweep_its_budget_stopped_gets_no_forecast_in_any_window(audit, tmp_path: Path, since: str | None) -> None:
    ledger = tmp_path / "l.db"
    _sweep(ledger, "done", "20 mWh", "stop-new", trials=10, joules=1.9e-3 * 3600, planned=50)
    with Ledger.open(ledger) as store:
        store.record_budget_event(BudgetEvent("20 mWh", "energy_kwh", 2e-5, "sweep", "stop-new", "stop-new", 1.9e-5,
                                              "spent", sweep="done", at=1011.0))
    args = ["report", "--ledger", str(ledger), "--format", "json"] + (["--since", since] if since else [])
    result = audit(*args)
    assert result.code == 0, result.err
    [sweep] = json.loads(result.out)["sweeps"]
    assert sweep["forecast"] is None
