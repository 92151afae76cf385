"""A sweep keeps the budget it started with, so reports show it before the budget ever speaks
(its first event comes at 50 % spent): `audit sweeps`, the JSON and the HTML plot's line."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
from auditor.integrations.optuna import AuditCallback

from auditor.ledger import Ledger
from auditor.model.carbon import CarbonModel
from auditor.model.units import Metric
from auditor.report.build import build_report
from auditor.report.html import plotted_budget

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_an_unspent_budget_is_shown_from_the_sweep(audit, tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger.db")
    callback = AuditCallback(ledger=ledger, budget="5 kWh", mode="hard", region="DE")
    study = optuna.create_study(study_name="roomy")
    study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=3, callbacks=[callback])
    callback.flush()
    with Ledger.open(ledger) as store:
        assert store.budget_events("roomy") == []  # it never spoke
        report = build_report(store, CarbonModel())
    [sweep] = report["sweeps"]
    assert sweep["budget"] == {"text": "5 kWh", "metric": "energy_kwh", "limit": 5.0, "scope": "sweep", "mode": "hard"}
    assert plotted_budget(report) == (Metric.ENERGY_KWH, 5.0)
    listed = audit("sweeps", "--ledger", ledger)
    assert listed.code == 0 and "5 kWh: <1% spent" in listed.out
    as_json = json.loads(audit("sweeps", "--ledger", ledger, "--format", "json").out)
    assert as_json[0]["budget"]["limit"] == 5.0


def test_a_sweep_without_a_budget_shows_none(audit, tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger.db")
    callback = AuditCallback(ledger=ledger)
    study = optuna.create_study(study_name="free")
    study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=2, callbacks=[callback])
    callback.flush()
    with Ledger.open(ledger) as store:
        report = build_report(store, CarbonModel())
    assert report["sweeps"][0]["budget"] is None and plotted_budget(report) is None
