"""The report in every format, its figures, escaping, and the HTML in a real headless Chromium."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from auditor.ledger import BudgetEvent, EnergyReading, Ledger, TrialRecord
from auditor.model.carbon import CarbonModel
from auditor.model.regions import resolve_region
from auditor.report.build import build_report
from auditor.report.formats import latex_escape, render_csv, render_markdown, render_statement

HOSTILE = "<script>document.title='pwned'</script>_50%&$"
GPU = [{"key": "gpu:GPU-0", "index": 0, "model": "NVIDIA H100 80GB HBM3"}]


def seed(path: Path) -> None:
    with Ledger.open(path) as store:
        store.ensure_sweep(HOSTILE, "optuna", attrs={"directions": ["maximize"]})
        store.ensure_sweep("final", "run")
        for i, state in enumerate(["complete", "pruned", "failed", "complete", "complete", "pruned"]):
            store.record_trial(TrialRecord(
                sweep=HOSTILE, trial_key=str(i), number=i, state=state, start_time=1.7e9 + 3600 * i,
                end_time=1.7e9 + 3600 * (i + 1), gpu_seconds=3600, devices=GPU,
                params={"name": HOSTILE}, objective=[0.5 + i / 10],
                energy={"gpu": EnergyReading(3.6e6, "counter"), "cpu": EnergyReading(3.6e5, "estimate-tdp")},
            ))
        store.record_trial(TrialRecord(sweep="final", trial_key="f", name="final <b>run</b>", state="complete",
                                       start_time=1.8e9, end_time=1.8e9 + 3600, gpu_seconds=3600, devices=GPU, is_final=True,
                                       energy={"gpu": EnergyReading(3.6e6, "counter")}))
        store.record_budget_event(BudgetEvent("3 kWh", "energy_kwh", 3.0, "sweep", "stop-new", "stop-new", 3.3,
                                              "budget reached", sweep=HOSTILE, overshoot=0.3))


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    path = tmp_path / "ledger.db"
    seed(path)
    with Ledger.open(path) as store:
        yield store


@pytest.fixture
def report(ledger: Ledger) -> dict:
    return build_report(ledger, CarbonModel(region=resolve_region("400 g/kWh"), pue=1.5))


def test_json_keys_and_figures(report: dict) -> None:
    assert report["version"] == 1
    totals = report["totals"]
    assert set(totals) >= {"trials", "gpu_hours", "energy_kwh", "facility_kwh", "co2e_kg", "cost_usd", "measured_fraction"}
    assert totals["trials"] == 7 and totals["gpu_hours"] == pytest.approx(7)
    assert totals["energy_kwh"] == pytest.approx(6 * 1.1 + 1)
    assert totals["co2e_kg"] == pytest.approx((6 * 1.1 + 1) * 1.5 * 0.4)
    assert totals["waste_fraction"] == pytest.approx(3 * 1.1 / 7.6)
    sweep = next(s for s in report["sweeps"] if s["name"] == HOSTILE)
    assert set(sweep) >= {"name", "framework", "trials_by_state", "stopped_by_budget", "co2e_kg"}
    assert sweep["stopped_by_budget"] and sweep["trials_by_state"] == {"complete": 3, "failed": 1, "pruned": 2}
    assert report["final_run"]["name"] == "final <b>run</b>"
    assert report["search_to_final_ratio"] == pytest.approx(6.6)
    assert report["hardware"] == {"NVIDIA H100 80GB HBM3": 7}
    assert report["equivalents"]["flights_ny_sf"] == pytest.approx(totals["co2e_kg"] / (1984 / 2.20462262185))


def test_region_and_pue_recompute_carbon(ledger: Ledger) -> None:
    low = build_report(ledger, CarbonModel(region=resolve_region("FR"), pue=1.1))["totals"]
    high = build_report(ledger, CarbonModel(region=resolve_region("PL"), pue=1.6))["totals"]
    assert low["energy_kwh"] == high["energy_kwh"]
    assert high["co2e_kg"] > 5 * low["co2e_kg"]


def test_since_and_sweep_filters(ledger: Ledger) -> None:
    model = CarbonModel()
    assert build_report(ledger, model, since=1.7e9 + 3 * 3600)["totals"]["trials"] == 4
    only = build_report(ledger, model, sweeps=["final"])
    assert [s["name"] for s in only["sweeps"]] == ["final"] and only["totals"]["trials"] == 1


def test_markdown_escapes_user_strings(report: dict) -> None:
    text = render_markdown(report)
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "| whole project |" in text
    assert "the search cost 6.6 times the final run" in text  # not rounded to 7


def test_csv_has_a_row_per_sweep_and_the_total(report: dict) -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert [r["sweep"] for r in rows] == [HOSTILE, "final", "whole project"]
    assert float(rows[-1]["co2e_kg"]) == pytest.approx(report["totals"]["co2e_kg"])


def test_statement_in_markdown_and_latex(report: dict) -> None:
    text = render_statement(report)
    markdown, latex = text.split("LaTeX:")
    assert "7 training runs across 2 searches" in markdown
    assert "NVIDIA H100 80GB HBM3" in markdown and "PUE 1.5" in markdown and "400 gCO2e/kWh" in markdown
    assert "CO$_2$e" in latex and "\\%" in latex
    assert latex_escape("a_b & 5% $") == "a\\_b \\& 5\\% \\$"


def test_cli_formats_out_and_plots(audit, tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    seed(path)
    for fmt in ("markdown", "csv", "statement", "json", "html"):
        out = tmp_path / f"r.{fmt}"
        result = audit("report", "--ledger", str(path), "--format", fmt, "--out", str(out))
        assert result.code == 0 and out.stat().st_size > 100, result.err
    plots = tmp_path / "plots"
    assert audit("report", "--ledger", str(path), "--plots", str(plots)).code == 0
    assert sorted(p.name for p in plots.iterdir()) == sorted(
        f"{stem}.{ext}" for stem in ("co2e-over-time", "objective-vs-co2e", "energy-by-state") for ext in ("png", "svg")
    )


def test_bad_report_input(audit, tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    seed(path)
    result = audit("report", "--ledger", str(path), "--since", "last tuesday")
    assert result.code == 2 and "cannot read date 'last tuesday'" in result.err
    result = audit("report", "--ledger", str(path), "--format", "html", "--out", str(tmp_path / "no" / "such" / "dir.html"))
    assert result.code == 1 and result.err.startswith("error: cannot write")


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "Debian's chromium is not installed (make test installs it where it can: apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.mark.slow
def test_html_report_renders_its_plots_in_headless_chromium(audit, tmp_path: Path) -> None:
    from PIL import Image

    browser = _chromium()
    path = tmp_path / "l.db"
    seed(path)
    page = tmp_path / "report.html"
    assert audit("report", "--ledger", str(path), "--format", "html", "--out", str(page), "--region", "DE").code == 0
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tempfile.mkdtemp()}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert dom.count("<svg") >= 3
    assert "pwned" not in dom.split("<title>")[1].split("</title>")[0]  # the payload never ran
    assert "&lt;script&gt;" in dom
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1000,2600", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    image = Image.open(shot).convert("RGB")
    colors = image.getcolors(maxcolors=1 << 20)
    spent_line = sum(n for n, rgb in colors if abs(rgb[0] - 0x2B) < 30 and abs(rgb[1] - 0x6C) < 30 and abs(rgb[2] - 0xB0) < 30)
    bars = sum(n for n, rgb in colors if abs(rgb[0] - 0x38) < 30 and abs(rgb[1] - 0xA1) < 30 and abs(rgb[2] - 0x69) < 30)
    assert spent_line > 200, "the CO2e-over-time line was not drawn"
    assert bars > 1000, "the energy-by-state bars were not drawn"


def test_trials_without_energy_are_counted_and_said_in_every_format(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as store:
        store.ensure_sweep("s", "ray")
        store.record_trial(TrialRecord(sweep="s", trial_key="ok", state="complete", start_time=0.0, end_time=10.0,
                                       energy={"gpu": EnergyReading(3600.0, "counter")}))
        store.record_trial(TrialRecord(sweep="s", trial_key="early", state="stopped", start_time=0.0, end_time=1.0,
                                       flags=["energy-missing"]))
        report = build_report(store, CarbonModel())
    assert report["totals"]["trials_without_energy"] == 1 and report["sweeps"][0]["trials_without_energy"] == 1
    assert "1 trial has no energy figure (s (1))" in render_markdown(report)
    assert "1 of the 2 runs has no energy figure" in render_statement(report)
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert [row["trials_without_energy"] for row in rows] == ["1", "1"]


def test_a_window_after_the_last_trial_shows_no_final_run_and_no_stop(ledger: Ledger) -> None:
    """--since later than every trial: no "-1x the final run", no budget stop from before."""
    report = build_report(ledger, CarbonModel(), since=2.0e9)
    assert report["totals"]["trials"] == 0
    assert report["final_run"] is None and report["search_to_final_ratio"] is None
    assert not any(s["budget_events"] for s in report["sweeps"])


def test_ratios_are_never_truncated(ledger: Ledger) -> None:
    from auditor.report.formats import times

    report = build_report(ledger, CarbonModel())
    ratio = report["search_to_final_ratio"]
    assert f"cost {times(ratio)} times the final run" in render_markdown(report)
    assert times(1.94) == "1.9" and times(0.5) == "0.5" and times(6.03) == "6"


def test_killed_trials_are_counted_with_the_failed_ones(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as store:
        store.ensure_sweep("s", "optuna")
        store.record_trial(TrialRecord(sweep="s", trial_key="0", state="complete", start_time=0.0, end_time=1.0))
        store.record_trial(TrialRecord(sweep="s", trial_key="1", state="running", start_time=0.0, end_time=1.0))  # stale
        report = build_report(store, CarbonModel())
    assert report["totals"]["trials_by_state"] == {"complete": 1, "interrupted": 1}
    assert "| 2 (1/0/1) |" in render_markdown(report)
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert rows[0]["interrupted"] == "1"
