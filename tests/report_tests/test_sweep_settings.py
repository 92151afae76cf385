"""Each sweep's figures use the grid, PUE and price it ran with: a ledger may hold sweeps from
several regions, and a report over them sums each with its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.ledger import EnergyReading, Ledger, TrialRecord
from auditor.model.carbon import CarbonModel, Overrides, Price, model_for_sweep
from auditor.model.regions import resolve_region
from auditor.report.build import build_report
from auditor.report.formats import render_csv

FRANCE = CarbonModel(resolve_region("FR"), pue=1.1, price=Price(per_kwh=0.2))
POLAND = CarbonModel(resolve_region("PL"), pue=1.5, price=Price(per_kwh=0.1))
REPORT = CarbonModel(resolve_region("500 g/kWh"), pue=2.0)


def trial(sweep: str, key: str, kwh: float, final: bool = False) -> TrialRecord:
    return TrialRecord(sweep=sweep, trial_key=key, state="complete", start_time=0.0, end_time=3600.0,
                       gpu_seconds=3600.0, energy={"gpu": EnergyReading(kwh * 3.6e6, "counter")}, is_final=final)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    with Ledger.open(tmp_path / "l.db") as store:
        store.ensure_sweep("fr", "optuna", attrs={"settings": FRANCE.to_record()})
        store.ensure_sweep("pl", "ray", attrs={"settings": POLAND.to_record()})
        store.ensure_sweep("old", "optuna")  # recorded before sweeps kept their settings
        store.ensure_sweep("final", "run", attrs={"settings": FRANCE.to_record()})
        for sweep, kwh in (("fr", 2.0), ("pl", 3.0), ("old", 1.0)):
            store.record_trial(trial(sweep, "0", kwh))
        store.record_trial(trial("final", "f", 0.5, final=True))
        yield store


def test_each_sweep_is_summed_with_its_own_settings(ledger: Ledger) -> None:
    report = build_report(ledger, REPORT)
    sweeps = {s["name"]: s for s in report["sweeps"]}
    expected = {"fr": FRANCE.footprint(2.0, 1), "pl": POLAND.footprint(3.0, 1), "old": REPORT.footprint(1.0, 1),
                "final": FRANCE.footprint(0.5, 1)}
    for name, fp in expected.items():
        assert sweeps[name]["co2e_kg"] == pytest.approx(fp.co2e_kg)
        assert sweeps[name]["facility_kwh"] == pytest.approx(fp.facility_kwh)
    assert {n: s["settings_from"] for n, s in sweeps.items()} == {"fr": "sweep", "pl": "sweep", "old": "report", "final": "sweep"}
    assert sweeps["pl"]["region"]["code"] == "PL" and sweeps["pl"]["pue"]["value"] == 1.5
    totals = report["totals"]
    assert totals["co2e_kg"] == pytest.approx(sum(fp.co2e_kg for fp in expected.values()))
    assert totals["facility_kwh"] == pytest.approx(sum(fp.facility_kwh for fp in expected.values()))
    assert totals["energy_kwh"] == pytest.approx(6.5)
    assert totals["cost_usd"] is None  # the old sweep has no price: no total pretends to
    assert report["region"]["code"] == "per-sweep"
    assert report["region"]["g_co2e_per_kwh"] == pytest.approx(1000 * totals["co2e_kg"] / totals["facility_kwh"])
    assert report["final_run"]["co2e_kg"] == pytest.approx(FRANCE.footprint(0.5, 1).co2e_kg)
    rows = {row["sweep"]: row for row in _csv_rows(render_csv(report))}
    assert float(rows["pl"]["co2e_kg"]) == pytest.approx(expected["pl"].co2e_kg, rel=1e-6)


def test_overrides_replace_every_sweeps_settings(ledger: Ledger) -> None:
    germany = resolve_region("DE")
    report = build_report(ledger, REPORT, overrides=Overrides(region=germany))
    assert {s["settings_from"] for s in report["sweeps"]} == {"override"}
    assert report["region"]["code"] == "DE"
    assert report["pue"]["source"].startswith("each sweep's own")  # the PUEs are still each sweep's own
    pl = next(s for s in report["sweeps"] if s["name"] == "pl")
    assert pl["co2e_kg"] == pytest.approx(3.0 * 1.5 * germany.g_co2e_per_kwh / 1000)
    both = build_report(ledger, REPORT, overrides=Overrides(region=germany, pue=1.3))
    assert both["region"]["code"] == "DE" and both["pue"]["value"] == 1.3
    assert both["totals"]["co2e_kg"] == pytest.approx(6.5 * 1.3 * germany.g_co2e_per_kwh / 1000)


def test_a_damaged_settings_record_falls_back_on_the_reports_and_says_so(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as store:
        record = store.ensure_sweep("x", "optuna", attrs={"settings": {"region": {"code": "FR"}}})
    model, origin = model_for_sweep(record.attrs, REPORT, Overrides())
    assert model == REPORT and origin == "report"


def _csv_rows(text: str) -> list[dict[str, str]]:
    import csv
    import io

    return list(csv.DictReader(io.StringIO(text)))
