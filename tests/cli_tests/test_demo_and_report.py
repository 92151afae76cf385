"""`audit demo` (a real budgeted Optuna search of torch models) and `audit report`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditor.ledger import EnergyReading, Ledger, TrialRecord

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_runs_a_budgeted_search_and_reports_it(audit, clean_environment: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # the demo reads configs/demo.toml from the project
    ledger = str(clean_environment / "ledger.db")
    result = audit("demo", "--ledger", ledger, "--region", "DE")
    assert result.code == 0, result.err
    assert "stopped by its budget" in result.out
    assert "whole project" in result.out
    assert "━" not in result.out  # no progress bar when the output is not a terminal
    with Ledger.open(ledger) as store:
        [sweep] = store.sweeps()
        trials = store.trials(sweep.name)
        events = store.budget_events(sweep.name)
    assert sweep.framework == "optuna" and 8 <= len(trials) < 100  # 12 full trials' worth, measured first
    assert {t.state.value for t in trials} == {"complete", "pruned"}  # it shows pruning as well as the stop
    assert "12 full trials' worth on this machine" in result.out
    assert any(e.action == "stop-new" for e in events)


def seed_ledger(path: Path) -> None:
    with Ledger.open(path) as store:
        store.ensure_sweep("search", "optuna")
        store.ensure_sweep("final", "run")
        for i, state in enumerate(["complete", "pruned", "failed", "complete"]):
            store.record_trial(TrialRecord(sweep="search", trial_key=str(i), number=i, state=state, start_time=0, end_time=3600,
                                           gpu_seconds=3600, energy={"gpu": EnergyReading(3.6e6, "counter"), "cpu": EnergyReading(3.6e5, "estimate-tdp")}))
        store.record_trial(TrialRecord(sweep="final", trial_key="f", name="final-train", state="complete", start_time=0,
                                       end_time=3600, gpu_seconds=3600, is_final=True, energy={"gpu": EnergyReading(3.6e6, "counter")}))


def test_report_json_and_table(audit, clean_environment: Path) -> None:
    ledger = clean_environment / "l.db"
    seed_ledger(ledger)
    data = json.loads(audit("report", "--ledger", str(ledger), "--region", "500 g/kWh", "--pue", "1.5", "--format", "json").out)
    totals = data["totals"]
    assert totals["trials"] == 5
    assert totals["energy_kwh"] == pytest.approx(4 * 1.1 + 1.0)
    assert totals["facility_kwh"] == pytest.approx(1.5 * 5.4)
    assert totals["co2e_kg"] == pytest.approx(1.5 * 5.4 * 0.5)
    assert totals["gpu_hours"] == pytest.approx(5)
    assert totals["measured_fraction"] == pytest.approx(5.0 / 5.4)
    search = next(s for s in data["sweeps"] if s["name"] == "search")
    assert search["trials_by_state"] == {"complete": 2, "pruned": 1, "failed": 1}
    assert data["final_run"]["name"] == "final-train"
    assert data["search_to_final_ratio"] == pytest.approx(4.4)
    table = " ".join(audit("report", "--ledger", str(ledger), "--region", "DE").out.split())
    assert "whole project" in table and "the search cost 4.4 times the final run" in table and "(final-train, marked final)" in table


def test_report_sentences_are_one_line_each_and_small_shares_not_zero(audit, clean_environment: Path, monkeypatch) -> None:
    """Piped with a narrow COLUMNS: the header and each sentence stay on one line (a long ledger
    path too), one sweep reads "1 sweep", and a failed trial's 0.2 % of the energy "<1%"."""
    ledger = clean_environment / ("a-rather-long-folder-name-" * 4) / "l.db"
    ledger.parent.mkdir()
    with Ledger.open(ledger) as store:
        store.ensure_sweep("search", "optuna")
        for key, state, joules in (("0", "complete", 3.6e6), ("1", "failed", 7.2e3)):
            store.record_trial(TrialRecord(sweep="search", trial_key=key, state=state, start_time=0, end_time=60,
                                           energy={"gpu": EnergyReading(joules, "counter")}))
    monkeypatch.setenv("COLUMNS", "60")
    lines = audit("report", "--ledger", str(ledger), "--region", "DE").out.splitlines()
    [header] = [line for line in lines if line.startswith("Ledger ")]
    assert f"{ledger} · 1 sweep · 2 trials · grid DE" in header and header.endswith("PUE 1.58")
    assert "Pruned, stopped and failed trials used <1% of the energy." in lines


def test_report_unknown_sweep(audit, clean_environment: Path) -> None:
    ledger = clean_environment / "l.db"
    seed_ledger(ledger)
    result = audit("report", "--ledger", str(ledger), "--sweep", "nope")
    assert result.code == 1
    assert result.err == f"error: no sweep called 'nope' in {ledger}: it holds 'search', 'final' (see `audit sweeps`)\n"
    close = audit("report", "--ledger", str(ledger), "--sweep", "serch")
    assert close.code == 1 and "did you mean 'search'?" in close.err


def test_it_and_facility_energy_are_shown_side_by_side(audit, clean_environment: Path) -> None:
    ledger = clean_environment / "l.db"
    seed_ledger(ledger)
    lines = audit("report", "--ledger", str(ledger), "--pue", "1.5", "--region", "DE").out.splitlines()
    header = next(line for line in lines if line.startswith("sweep"))
    assert "IT kWh" in header and "facility kWh" in header
    whole = next(line for line in lines if line.startswith("whole project")).split()
    assert "5.40" in whole and "8.10" in whole  # 5.4 kWh at the devices, x 1.5 at the facility, in one unit
    listing = audit("sweeps", "--ledger", str(ledger)).out
    assert "IT kWh" in listing and "facility kWh" in listing


def test_enumerated_options_take_any_case_and_unknown_ones_list_the_choices(audit, clean_environment: Path) -> None:
    ledger = clean_environment / "l.db"
    seed_ledger(ledger)
    assert json.loads(audit("report", "--ledger", str(ledger), "--format", "JSON").out)["totals"]["trials"] == 5
    pruned = json.loads(audit("trials", "search", "--ledger", str(ledger), "--state", "PRUNED", "--format", "Json").out)
    assert [t["state"] for t in pruned] == ["pruned"]
    by_energy = audit("sweeps", "--ledger", str(ledger), "--sort", "ENERGY")
    assert by_energy.code == 0 and by_energy.out.index("search") < by_energy.out.index("final")  # 4.4 kWh before 1 kWh
    gpus = json.loads(audit("hardware", "h100", "--type", "GPU", "--format", "JSON").out)
    assert gpus and {h["type"] for h in gpus} == {"gpu"}
    wrong = audit("report", "--ledger", str(ledger), "--format", "pdf")
    assert wrong.code != 0 and all(choice in wrong.err for choice in ("table", "markdown", "json", "csv", "statement", "html"))


def test_trials_show_unicode_params_as_text(audit, clean_environment: Path) -> None:
    from auditor.search.records import jsonable_params

    ledger = clean_environment / "l.db"
    with Ledger.open(ledger) as store:
        store.ensure_sweep("search", "optuna")
        store.record_trial(TrialRecord(sweep="search", trial_key="0", number=0, state="complete", start_time=0, end_time=1,
                                       params=jsonable_params({"optimizer": "Müller", "layers": ["größe", 3]})))
    out = audit("trials", "search", "--ledger", str(ledger)).out
    assert "Müller" in out and "größe" in out and "\\u" not in out


def test_sweeps_list_newest_first_with_their_start_and_budget(audit, clean_environment: Path) -> None:
    """Two real Optuna searches, the second under a GPU-hour budget it exhausts at once."""
    import optuna
    from auditor.integrations.optuna import AuditCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ledger = str(clean_environment / "l.db")
    for name, budget in (("older", None), ("newer", "1e-9 kWh")):
        audit_callback = AuditCallback(ledger=ledger, budget=budget, region="DE")
        study = optuna.create_study(study_name=name)
        study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=5, callbacks=[audit_callback])
        audit_callback.close()
    rows = json.loads(audit("sweeps", "--ledger", ledger, "--format", "json").out)
    assert [r["name"] for r in rows] == ["newer", "older"] and rows[0]["started"] > rows[1]["started"]
    lines = audit("sweeps", "--ledger", ledger).out.splitlines()
    header = next(line for line in lines if line.startswith("sweep"))
    assert "started" in header and "budget" in header
    newer = next(line for line in lines if line.startswith("newer"))
    # the limit (1e-9 kWh is 0.001 mWh, under what the smallest unit shows), the share spent, the stop
    assert "< 0.01 mWh: " in newer and newer.rstrip().endswith("% spent, stopped") and "e-" not in newer
    assert "spent" not in next(line for line in lines if line.startswith("older"))  # no budget, no budget cell


def test_report_prices_every_sweep_from_its_flags(audit, clean_environment: Path) -> None:
    ledger = clean_environment / "l.db"
    seed_ledger(ledger)  # 5 GPU-hours, 5.4 IT kWh
    by_hour = json.loads(audit("report", "--ledger", str(ledger), "--price-per-gpu-hour", "2.5", "--format", "json").out)
    assert by_hour["totals"]["cost_usd"] == pytest.approx(5 * 2.5)
    by_kwh = json.loads(audit("report", "--ledger", str(ledger), "--pue", "1.5", "--price-per-kwh", "0.2", "--format", "json").out)
    assert by_kwh["totals"]["cost_usd"] == pytest.approx(5.4 * 1.5 * 0.2)  # per facility kWh
    table = audit("report", "--ledger", str(ledger), "--price-per-gpu-hour", "2.5").out
    assert "cost USD" in table and "$12.50" in table
    both = audit("report", "--ledger", str(ledger), "--price-per-gpu-hour", "2", "--price-per-kwh", "0.1")
    assert both.code != 0 and both.err == "error: give a price per GPU-hour or a price per kWh, not both\n"
