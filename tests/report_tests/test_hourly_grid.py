"""The hour's grid: trials charged at the series over their own intervals, in the report and in
a budget, market-based beside location-based, and what shifting would have saved; each figure
against a hand computation over a real SQLite ledger."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from auditor.budget import Budget
from auditor.budget.guard import BudgetGuard
from auditor.errors import InvalidInputError
from auditor.ledger import EnergyReading, Ledger, TrialRecord
from auditor.model.carbon import CarbonModel
from auditor.model.series import IntensitySeries, MissingIntensityError
from auditor.report.build import build_report

T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()  # 00:00 UTC
H = 3600.0
SERIES = """timestamp,intensity_g_per_kwh
2026-01-01T00:00:00Z,200
2026-01-01T01:00:00Z,400
2026-01-01T02:00:00+00:00,100
2026-01-01T04:00:00+01:00,100
"""  # the last row is 03:00 UTC


def _trial(key: str, start: float, end: float, kwh: float) -> TrialRecord:
    return TrialRecord(sweep="hourly", trial_key=key, number=int(key), state="complete", start_time=start, end_time=end,
                       energy={"gpu": EnergyReading(kwh * 3.6e6, "counter")}, objective=[float(key)])


@pytest.fixture
def series_file(tmp_path: Path) -> Path:
    path = tmp_path / "grid.csv"
    path.write_text(SERIES)
    return path


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    with Ledger.open(tmp_path / "ledger.db") as store:
        store.ensure_sweep("hourly", "optuna", attrs={"settings": CarbonModel(pue=1.5).to_record()})
        store.record_trial(_trial("0", T0 + 0.5 * H, T0 + 1.5 * H, 1.0))    # half at 200, half at 400
        store.record_trial(_trial("1", T0 + 1.25 * H, T0 + 1.75 * H, 2.0))  # all at 400
        yield store


# By hand: trial 0: 1 kWh x 1.5 = 1.5 kWh at (200 + 400) / 2 = 300 g/kWh -> 450 g;
# trial 1: 2 kWh x 1.5 = 3 kWh at 400 g/kWh -> 1,200 g. Together 1.65 kg.
# Started at 02:00 UTC instead (1.5 h later): trial 0 in 02:00-03:00 at 100 -> 150 g, trial 1 in
# 02:45-03:15 at 100 -> 300 g: 0.45 kg, 1.2 kg (72.7 %) less. At 01:00 (0.5 h later): 600 g + 3 kWh x
# (400 + 100) / 2 = 750 g: 1.35 kg. At 03:00 trial 1 would run past the series' end (04:00): not a candidate.


def test_series_reads_our_columns_with_zones(series_file: Path) -> None:
    series = IntensitySeries.load(series_file)
    assert series.times == (T0, T0 + H, T0 + 2 * H, T0 + 3 * H) and series.values == (200, 400, 100, 100)
    assert series.step_s == H and series.end == T0 + 4 * H


def test_report_charges_each_trial_its_own_hours(ledger: Ledger, series_file: Path) -> None:
    from auditor.model.carbon import Overrides

    report = build_report(ledger, CarbonModel(), overrides=Overrides(series=IntensitySeries.load(series_file)))
    sweep = report["sweeps"][0]
    assert sweep["co2e_kg"] == pytest.approx(0.45 + 1.2, rel=1e-12)
    assert report["totals"]["co2e_kg"] == pytest.approx(1.65, rel=1e-12)
    assert sweep["facility_kwh"] == pytest.approx(4.5)
    assert sweep["region"]["code"] == "hourly" and sweep["region"]["g_co2e_per_kwh"] == pytest.approx(1650 / 4.5)
    assert sweep["intensity_series"]["step_s"] == H and sweep["co2e_basis"] == "location-based"
    # the best trial (the final run) is charged its own hours too: trial 0, 450 g
    assert report["final_run"]["co2e_kg"] == pytest.approx(0.45, rel=1e-12)
    # without the series: the yearly world average, 475 g/kWh
    plain = build_report(ledger, CarbonModel())
    assert plain["totals"]["co2e_kg"] == pytest.approx(4.5 * 0.475)


def test_cli_report_shift_market_and_json(audit, ledger: Ledger, series_file: Path) -> None:
    args = ("report", "--ledger", ledger.location, "--intensity-series", str(series_file), "--shift", "24h",
            "--market-intensity", "120 g/kWh")
    data = json.loads(audit(*args, "--format", "json").out)
    sweep = data["sweeps"][0]
    assert sweep["co2e_kg"] == pytest.approx(1.65, rel=1e-12)
    assert sweep["co2e_market_kg"] == pytest.approx(4.5 * 0.120, rel=1e-12)
    assert data["totals"]["co2e_market_kg"] == pytest.approx(0.54, rel=1e-12)
    shift = sweep["shift"]
    assert shift["best_start"] == T0 + 2 * H and shift["delay_h"] == pytest.approx(1.5)
    assert shift["shifted_co2e_kg"] == pytest.approx(0.45, rel=1e-12)
    assert shift["saved_kg"] == pytest.approx(1.2, rel=1e-12)
    assert shift["saved_fraction"] == pytest.approx(1.2 / 1.65, rel=1e-12)
    assert shift["starts_tried"] == 4 and shift["starts_not_covered"] == 1  # as ran, 01:00, 02:00; 03:00 not covered
    text = audit(*args).out
    assert "started at 2026-01-01 02:00 UTC (1.5 hours later) it would have emitted 73% less (450 g CO2e instead of 1.65 kg CO2e" in text
    assert "Location-based: 1.65 kg CO2e" in text and "market-based: 540 g CO2e (market factor 120 g/kWh" in text
    assert "e-0" not in text and "e+0" not in text


def test_missing_hours_are_an_error_that_names_them(audit, ledger: Ledger, tmp_path: Path) -> None:
    gappy = tmp_path / "gappy.csv"
    gappy.write_text("timestamp,intensity_g_per_kwh\n2026-01-01T00:00Z,200\n2026-01-01T02:00Z,100\n2026-01-01T03:00Z,100\n")
    result = audit("report", "--ledger", ledger.location, "--intensity-series", str(gappy))
    assert result.code != 0 and "Traceback" not in result.err
    assert "has no value for 2026-01-01 01:00 to 02:00 UTC (sweep hourly ran then)" in result.err
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.parametrize(("text", "says"), [
    ("time,value_g\n2026-01-01T00:00Z,1\n", "unknown columns 'time', 'value_g'"),
    ("timestamp,intensity_g_per_kwh\n2026-01-01T00:00,1\n", "row 2: the time '2026-01-01T00:00' has no zone"),
    ("timestamp,intensity_g_per_kwh\nyesterday,1\n", "row 2: cannot read the time 'yesterday'"),
    ("timestamp,intensity_g_per_kwh\n2026-01-01T00:00Z,lots\n", "row 2: intensity_g_per_kwh 'lots' is not a number"),
    ("timestamp,intensity_g_per_kwh\n2026-01-01T00:00Z,1\n2026-01-01T00:00Z,2\n", "row 3: 2026-01-01 00:00 UTC is given twice"),
    ("", "empty file"),
])
def test_malformed_series_is_one_clear_line(audit, ledger: Ledger, tmp_path: Path, text: str, says: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    result = audit("report", "--ledger", ledger.location, "--intensity-series", str(bad))
    assert result.code != 0 and says in result.err and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_bad_shift_and_market_are_clear(audit, ledger: Ledger, series_file: Path) -> None:
    result = audit("report", "--ledger", ledger.location, "--intensity-series", str(series_file), "--shift", "soon")
    assert result.code != 0 and "cannot read the duration 'soon'" in result.err
    result = audit("report", "--ledger", ledger.location, "--market-intensity", "120")
    assert result.code != 0 and "cannot read intensity" in result.err


def test_electricity_maps_and_watttime_exports() -> None:
    em = IntensitySeries.parse(
        "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
        "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage\n"
        "2026-01-01 00:00:00,Germany,Germany,DE,300.5,350.25,40\n2026-01-01 01:00:00,Germany,Germany,DE,310,360,41\n")
    assert em.times == (T0, T0 + H) and em.values == (350.25, 360.0) and "life cycle" in em.kind
    direct = IntensitySeries.parse("Datetime (UTC),Carbon Intensity gCO₂eq/kWh (direct)\n2026-01-01 00:00:00,300.5\n")
    assert direct.values == (300.5,) and "direct" in direct.kind
    wt = IntensitySeries.parse("point_time,value,frequency,market,version,region\n"
                               "2026-01-01T00:05:00+00:00,1000,300,RTM,3.2,CAISO_NORTH\n"
                               "2026-01-01T00:00:00+00:00,900,300,RTM,3.2,CAISO_NORTH\n")
    assert wt.times == (T0, T0 + 300) and wt.step_s == 300
    assert wt.values == (pytest.approx(900 * 0.45359237), pytest.approx(1000 * 0.45359237))  # lbs/MWh -> g/kWh


def test_a_co2e_budget_counts_the_same_hours(ledger: Ledger, series_file: Path) -> None:
    model = CarbonModel(pue=1.5, series=IntensitySeries.load(series_file))
    guard = BudgetGuard(Budget.parse("2 kg", mode="warn"), model, ledger, "hourly")
    assert guard.spent().co2e_kg == pytest.approx(1.65, rel=1e-12)  # the report's figure
    assert guard.budget.check(guard.spent()).fraction == pytest.approx(1.65 / 2, rel=1e-12)
    # the next trial is forecast at the intensity in force now, which this series lacks: said, by the hour
    with pytest.raises(MissingIntensityError, match="has no value for 20"):
        guard.check()
    # an energy budget is not touched by the series
    energy = BudgetGuard(Budget.parse("10 kWh"), model, ledger, "hourly")
    assert energy.spent().energy_kwh == pytest.approx(3.0)


def test_a_co2e_budget_outside_the_series_is_not_checked_in_silence(ledger: Ledger, tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    short = tmp_path / "short.csv"
    short.write_text("timestamp,intensity_g_per_kwh\n2026-01-01T00:00Z,200\n")
    model = CarbonModel(series=IntensitySeries.load(short))
    with pytest.raises(MissingIntensityError, match="01:00 to 01:45 UTC"):
        BudgetGuard(Budget.parse("2 kg"), model, ledger, "hourly").spent()
    closed = BudgetGuard(Budget.parse("2 kg", fail="closed"), model, ledger, "hourly").decide(after="trial 1")
    assert closed.action.stops and "has no value for" in closed.reason


def test_settings_take_the_series_and_market_factor(clean_environment: Path, series_file: Path) -> None:
    from auditor.config import carbon_model, load_settings

    (clean_environment / "auditor.toml").write_text(f'intensity_series = "{series_file}"\nmarket_intensity = "0.1 kg/kWh"\n')
    model = carbon_model(load_settings(environ={}))
    assert model.series is not None and model.series.values[1] == 400 and model.market_g_per_kwh == 100
    assert CarbonModel.from_record(model.to_record()) == model
    (clean_environment / "auditor.toml").write_text('intensity_series = "nowhere.csv"\n')
    with pytest.raises(InvalidInputError, match="intensity_series: cannot read the intensity series"):
        load_settings(environ={})


def test_markdown_and_statement_say_both_figures_and_the_shift(audit, ledger: Ledger, series_file: Path) -> None:
    args = ("report", "--ledger", ledger.location, "--intensity-series", str(series_file), "--shift", "24h",
            "--market-intensity", "120 g/kWh")
    markdown = audit(*args, "--format", "markdown").out
    assert "- Location-based: 1.65 kg CO2e" in markdown and "it would have emitted 73% less" in markdown
    statement = audit(*args, "--format", "statement").out
    assert "this is 1.65 kg CO2e" in statement
    assert "market-based (with the market factor given for the searches), 540 g CO2e." in statement
    assert "hourly series" in statement
