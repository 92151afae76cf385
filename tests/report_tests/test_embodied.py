"""Embodied carbon and water in the report: per sweep and in total from the ledger's GPU-hours,
the same figure in every format, each GPU model at its own figure with "table", nothing when
unset, and bad values refused in one line; over a real SQLite ledger."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from auditor.ledger import EnergyReading, Ledger, TrialRecord
from auditor.model import embodied as embodied_model
from auditor.model.carbon import CarbonModel
from auditor.model.regions import resolve_region
from auditor.model.units import Metric, format_quantity
from auditor.report.build import build_report
from auditor.report.embodied import EmbodiedSettings
from auditor.report.formats import CSV_COLUMNS, render_csv, render_markdown, render_statement
from auditor.report.html import render_html

A100 = {"key": "gpu:GPU-0", "index": 0, "model": "NVIDIA A100-SXM4-80GB"}
H100 = {"key": "gpu:GPU-1", "index": 1, "model": "NVIDIA H100 80GB HBM3"}
T0 = 1.7e9
H = 3600.0
# GPU-hours by hand: a100-search 4 trials x 2 A100 x 1 h = 8 (its idle stretch holds no trial:
# not charged); h100-search 1 H100 x 1 h = 1; unrecorded 0.5 h with no device list: 9.5 in all.
# IT kWh: 4 x 1 + 0.25 idle = 4.25; 0.5; 0.25: 5.0 in all.
GPU_HOURS = {"a100-search": 8.0, "h100-search": 1.0, "unrecorded": 0.5}
IT_KWH = {"a100-search": 4.25, "h100-search": 0.5, "unrecorded": 0.25}


def _trial(sweep: str, key: str, start: float, hours: float, kwh: float, devices: list[dict], gpu_seconds: float,
           state: str = "complete") -> TrialRecord:
    return TrialRecord(sweep=sweep, trial_key=key, state=state, start_time=start, end_time=start + hours * H,
                       gpu_seconds=gpu_seconds, devices=devices, energy={"gpu": EnergyReading(kwh * 3.6e6, "counter")})


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    with Ledger.open(tmp_path / "ledger.db") as store:
        for name in GPU_HOURS:
            store.ensure_sweep(name, "optuna")
        for i in range(4):
            store.record_trial(_trial("a100-search", str(i), T0 + i * H, 1, 1.0, [A100, {**A100, "index": 1}], 2 * H))
        store.record_trial(_trial("a100-search", "idle-0", T0 + 4 * H, 1, 0.25, [], 2 * H, state="idle"))
        store.record_trial(_trial("h100-search", "0", T0 + 10 * H, 1, 0.5, [H100], H))
        store.record_trial(_trial("unrecorded", "0", T0 + 20 * H, 0.5, 0.25, [], 0.5 * H))
        yield store


MODEL = CarbonModel(region=resolve_region("400 g/kWh"), pue=1.5)


def _rate(kg: float, years: float, use: float) -> float:
    return kg / (years * 8760 * use)


def test_a_given_figure_charges_every_gpu_hour_per_sweep_and_in_total(ledger: Ledger) -> None:
    report = build_report(ledger, MODEL, embodied=EmbodiedSettings(1000, 4, 0.5), wue_l_per_kwh=1.8)
    rate = _rate(1000, 4, 0.5)
    for sweep in report["sweeps"]:
        hours, kwh = GPU_HOURS[sweep["name"]], IT_KWH[sweep["name"]]
        assert sweep["gpu_hours"] == pytest.approx(hours, rel=1e-12)
        assert sweep["embodied_co2e_kg"] == pytest.approx(hours * rate, rel=1e-12)
        assert sweep["total_co2e_kg"] == pytest.approx(sweep["co2e_kg"] + hours * rate, rel=1e-12)
        assert sweep["co2e_kg"] == pytest.approx(kwh * 1.5 * 0.4, rel=1e-12)  # operational unchanged
        assert sweep["water_l"] == pytest.approx(kwh * 1.8, rel=1e-12)
    totals = report["totals"]
    assert totals["embodied_co2e_kg"] == pytest.approx(9.5 * rate, rel=1e-12)
    assert totals["total_co2e_kg"] == pytest.approx(5.0 * 1.5 * 0.4 + 9.5 * rate, rel=1e-12)
    assert totals["water_l"] == pytest.approx(9.0, rel=1e-12)
    assert report["embodied"] == {
        "kg_per_device": 1000, "lifetime_years": 4, "utilization": 0.5, "kg_per_gpu_hour": pytest.approx(rate, rel=1e-12),
        "source": "given", "is_default": False, "method": report["embodied"]["method"], "models": [], "default_gpu_hours": 0.0}
    assert "Luccioni" in report["embodied"]["method"]
    assert report["water"]["wue_l_per_kwh"] == 1.8


def test_bloom_inputs_per_gpu_hour(ledger: Ledger) -> None:
    """Luccioni et al. 2022: 462.5 kg per GPU, 6 years, 85 %: 11.2 t for 1,082,990 GPU-hours."""
    report = build_report(ledger, MODEL, embodied=EmbodiedSettings(462.5))
    per_hour = report["totals"]["embodied_co2e_kg"] / 9.5
    assert per_hour == pytest.approx(462.5 / (6 * 8760 * 0.85), rel=1e-12)
    assert 1_082_990 * per_hour / 1000 == pytest.approx(11.2, abs=0.05)


def test_the_same_figure_in_every_format(audit, ledger: Ledger) -> None:
    args = ("report", "--ledger", ledger.location, "--region", "400 g/kWh", "--pue", "1.5",
            "--embodied-kg", "1000", "--lifetime-years", "4", "--utilization", "0.5", "--wue", "1.8")
    expected = 9.5 * _rate(1000, 4, 0.5)  # 0.5422 kg
    said = format_quantity(Metric.CO2E_KG, expected)
    assert said == "542 g CO2e"

    data = json.loads(audit(*args, "--format", "json").out)
    assert data["totals"]["embodied_co2e_kg"] == pytest.approx(expected, rel=1e-12)
    assert data["totals"]["co2e_kg"] == pytest.approx(3.0, rel=1e-12)

    rows = list(csv.DictReader(io.StringIO(audit(*args, "--format", "csv").out)))
    whole = rows[-1]
    assert whole["sweep"] == "whole project"
    assert float(whole["embodied_co2e_kg"]) == pytest.approx(expected, rel=1e-12)
    assert float(whole["total_co2e_kg"]) == pytest.approx(3.0 + expected, rel=1e-12)
    assert float(whole["water_l"]) == pytest.approx(9.0, rel=1e-12)
    assert float(rows[0]["embodied_co2e_kg"]) == pytest.approx(8 * _rate(1000, 4, 0.5), rel=1e-12)

    table = audit(*args).out
    lines = table.splitlines()
    top = next(i for i, line in enumerate(lines) if line.startswith("sweep"))
    header = " ".join(" ".join(lines[1:top + 1]).split())  # long headers on two lines where the table is wide
    assert "embodied" in header and "g CO2e" in header and "water L" in header
    last = next(line for line in table.splitlines() if line.startswith("whole project")).split()
    assert last[-2:] == ["542", "9.00"]  # embodied g CO2e, water L
    assert f"Embodied carbon, from making the hardware: {said} for 9.5 GPU-hours" in table
    assert "beside 3 kg CO2e operational: 3.54 kg CO2e in all" in table
    assert "Water used on site: 9 L (1.8 L per IT kWh x 5 kWh)" in table

    markdown = audit(*args, "--format", "markdown").out
    assert "| whole project |  | 6 (6/0/0) |" in markdown and markdown.count("| 542 | 9.00 |") == 1
    assert f"- Embodied carbon, from making the hardware: {said}" in markdown

    statement = audit(*args, "--format", "statement").out
    assert (f"They also carried {said} of embodied emissions from manufacturing the hardware (Luccioni et al. 2022's "
            "method: 1,000 kg per GPU over 4 years at 50 % use), and used 9 L of water on site (1.8 L per IT kWh).") in statement
    assert "50 \\% use" in statement.split("LaTeX:")[1]  # escaped for LaTeX
    assert "this is 3 kg CO2e" in statement  # the operational figure on its own

    page = audit(*args, "--format", "html").out
    assert "<th>embodied g CO2e</th>" in page and "<td>542</td>" in page and said in page
    for text in (table, markdown, statement, page):
        assert "e-0" not in text and "e+0" not in text


def test_table_charges_each_model_its_own_figure_and_flags_the_default(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = ({"match": "A100", "type": "gpu", "embodied_kg_per_device": "400", "breakdown": "b", "source": "paper",
             "is_default": "false"},
            {"match": "*", "type": "gpu", "embodied_kg_per_device": "500", "breakdown": "no figure published", "source": "s",
             "is_default": "true"})
    monkeypatch.setattr(embodied_model, "_rows", lambda: rows)
    report = build_report(ledger, MODEL, embodied=EmbodiedSettings(None))
    a100, default = _rate(400, 6, 0.85), _rate(500, 6, 0.85)
    by_name = {s["name"]: s for s in report["sweeps"]}
    assert by_name["a100-search"]["embodied_co2e_kg"] == pytest.approx(8 * a100, rel=1e-12)
    assert by_name["h100-search"]["embodied_co2e_kg"] == pytest.approx(1 * default, rel=1e-12)
    assert by_name["unrecorded"]["embodied_co2e_kg"] == pytest.approx(0.5 * default, rel=1e-12)
    assert report["totals"]["embodied_co2e_kg"] == pytest.approx(8 * a100 + 1.5 * default, rel=1e-12)
    embodied = report["embodied"]
    assert embodied["kg_per_device"] is None and embodied["is_default"] and embodied["default_gpu_hours"] == pytest.approx(1.5)
    models = {m["model"]: m for m in embodied["models"]}
    assert models["NVIDIA A100-SXM4-80GB"]["kg_per_device"] == 400 and not models["NVIDIA A100-SXM4-80GB"]["is_default"]
    assert models["NVIDIA H100 80GB HBM3"]["kg_per_device"] == 500 and models["NVIDIA H100 80GB HBM3"]["is_default"]
    assert models["GPU model not recorded"]["gpu_hours"] == pytest.approx(0.5) and models["GPU model not recorded"]["is_default"]
    markdown = render_markdown(report)
    assert "each GPU model's figure from the bundled table" in markdown
    assert "No figure is published for NVIDIA H100 80GB HBM3 (1 GPU-h), GPU model not recorded (30 GPU-min)" in markdown
    assert "charged at the class default, 500 kg per GPU" in markdown


def test_table_with_the_bundled_figures(ledger: Ledger) -> None:
    report = build_report(ledger, MODEL, sweeps=["a100-search", "h100-search"], embodied=EmbodiedSettings(None, 6, 0.85))
    models = {m["model"]: m for m in report["embodied"]["models"]}
    assert set(models) == {"NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3"}  # the unrecorded sweep is not in this report
    a100, h100 = models["NVIDIA A100-SXM4-80GB"], models["NVIDIA H100 80GB HBM3"]
    assert a100["kg_per_device"] == 462.5 and not a100["is_default"] and "Luccioni" in a100["source"]
    assert h100["is_default"] and h100["source"].startswith("no figure published for this GPU")
    assert report["embodied"]["kg_per_device"] == 462.5  # every model charged the same figure: said once
    assert report["totals"]["embodied_co2e_kg"] == pytest.approx(9 * _rate(462.5, 6, 0.85), rel=1e-12)


def test_since_keeps_the_window(ledger: Ledger) -> None:
    report = build_report(ledger, MODEL, since=T0 + 5 * H, embodied=EmbodiedSettings(None))
    assert report["totals"]["embodied_co2e_kg"] == pytest.approx(1.5 * _rate(462.5, 6, 0.85), rel=1e-12)


def test_off_by_default(audit, ledger: Ledger) -> None:
    report = build_report(ledger, MODEL)
    text = json.dumps(report)
    assert "embodied" not in text and "water" not in text and "total_co2e_kg" not in text
    assert render_csv(report).splitlines()[0].split(",") == CSV_COLUMNS
    for rendered in (render_markdown(report), render_statement(report), render_html(report, {})):
        assert "mbodied" not in rendered and "water" not in rendered.lower()
    table = audit("report", "--ledger", ledger.location).out
    assert "embodied" not in table.lower() and "water" not in table.lower()


def test_settings_turn_it_on(audit, ledger: Ledger, clean_environment: Path) -> None:
    assert audit("config", "set", "embodied", "table").code == 0
    assert audit("config", "set", "wue", "1.8").code == 0
    assert audit("config", "set", "utilization", "0.5").code == 0
    data = json.loads(audit("report", "--ledger", ledger.location, "--format", "json").out)
    assert data["embodied"]["source"].startswith("each GPU model's figure") and data["embodied"]["utilization"] == 0.5
    assert data["totals"]["embodied_co2e_kg"] == pytest.approx(9.5 * _rate(462.5, 6, 0.5), rel=1e-12)
    assert data["totals"]["water_l"] == pytest.approx(9.0, rel=1e-12)
    flagged = json.loads(audit("report", "--ledger", ledger.location, "--format", "json", "--embodied-kg", "100").out)
    assert flagged["embodied"]["source"] == "given"  # the flag over the setting


@pytest.mark.parametrize(("args", "says"), [
    (("--embodied-kg", "-5"), "embodied '-5' is neither kg CO2e per device"),
    (("--embodied-kg", "lots"), "embodied 'lots' is neither kg CO2e per device"),
    (("--embodied-kg", "100", "--utilization", "1.5"), "utilization 1.5 must be above 0 and at most 1"),
    (("--embodied-kg", "table", "--lifetime-years", "0"), "lifetime_years 0.0 must be above 0"),
    (("--wue", "-1"), "wue (litres per IT kWh): -1.0 is not a finite number >= 0"),
])
def test_bad_values_are_one_clear_line(audit, ledger: Ledger, args: tuple[str, ...], says: str) -> None:
    result = audit("report", "--ledger", ledger.location, *args)
    assert result.code == 2 and result.out == ""
    assert result.err.strip() == f"error: {says}" or says in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


def test_a_bad_setting_names_its_file(audit, ledger: Ledger, clean_environment: Path) -> None:
    (clean_environment / "auditor.toml").write_text("utilization = 1.5\n")
    result = audit("report", "--ledger", ledger.location)
    assert result.code != 0 and "auditor.toml: setting utilization: utilization 1.5 must be above 0" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_lifetime_without_embodied_says_what_is_missing(audit, ledger: Ledger) -> None:
    result = audit("report", "--ledger", ledger.location, "--utilization", "0.5")
    assert result.code == 2 and "give --embodied-kg KG|table too" in result.err
    assert len(result.err.strip().splitlines()) == 1
