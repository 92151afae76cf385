"""Numbers people can read (issue 17): every human view of a real ledger holding a tiny search
(milligrams) and a huge one (thousands of tonnes) prints scaled units, no scientific notation
and no rows of zeros, while JSON and CSV keep base units at full precision; the plots read
likewise; closing hints say only what the user can still do; Ray trials sort as people count;
progress bars stay off pipes."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import optuna
import pytest

from auditor.ledger import BudgetEvent, EnergyReading, Ledger, TrialRecord
from auditor.model.carbon import CarbonModel
from auditor.model.regions import resolve_region
from auditor.model.units import Metric, parse_quantity
from auditor.report.build import build_report
from auditor.report.formats import render_markdown, render_statement
from auditor.report.html import figures_for, render_html
from auditor.report.plots import close_figures

optuna.logging.set_verbosity(optuna.logging.WARNING)

SCI = re.compile(r"\d[eE][+-]?\d")
ZEROS = re.compile(r"\b0\.000")  # a long row of zeros: 0.000...
SVG = re.compile(r"<svg.*?</svg>|<style>.*?</style>", re.S)  # plots are checked on their own; CSS colours are not numbers


def tiny_optuna_search(ledger: str) -> None:
    """A real Optuna search under the real callback: trials of a few milligrams (or less)."""
    from auditor.integrations.optuna import AuditCallback

    audit = AuditCallback(ledger=ledger, region="DE", sweep="tiny", budget="1 kWh")
    study = optuna.create_study(study_name="tiny")
    audit.attach(study)
    study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=4, callbacks=[audit])
    audit.close()


def huge_search(ledger: str) -> None:
    """A cluster-sized search: 64 trials of 8 GPUs x 50 h at 700 W (17.9 MWh, 13.4 t CO2e)."""
    with Ledger.open(ledger) as store:
        store.ensure_sweep("huge", "ray")
        for i in range(64):
            store.record_trial(TrialRecord(
                sweep="huge", trial_key=f"huge_{i:05d}", name=f"{i}_lr=0.1", state="complete" if i % 3 else "stopped",
                start_time=1.7e9 + i * 3600, end_time=1.7e9 + i * 3600 + 50 * 3600, gpu_seconds=8 * 50 * 3600,
                energy={"gpu": EnergyReading(8 * 700 * 50 * 3600, "counter")}, objective=[1.0 / (i + 1)]))
        store.record_budget_event(BudgetEvent("18 MWh", "energy_kwh", 18e3, "sweep", "stop-new", "stop-new", 17.92e3,
                                              "budget reached", sweep="huge", forecast=280.0))


@pytest.fixture
def ledger(tmp_path: Path) -> str:
    path = str(tmp_path / "ledger.db")
    tiny_optuna_search(path)
    huge_search(path)
    return path


def human_views(audit, ledger: str) -> dict[str, str]:
    views = {}
    for fmt in ("table", "markdown", "statement", "html"):
        result = audit("report", "--ledger", ledger, "--format", fmt)
        assert result.code == 0, result.err
        views[fmt] = SVG.sub("", result.out)
    for sweep in ("tiny", "huge"):
        views[f"report --sweep {sweep}"] = audit("report", "--ledger", ledger, "--sweep", sweep).out
        views[f"trials {sweep}"] = audit("trials", sweep, "--ledger", ledger).out
    views["sweeps"] = audit("sweeps", "--ledger", ledger).out
    views["priced"] = audit("report", "--ledger", ledger, "--price-per-kwh", "0.01").out
    return views


def test_no_human_view_prints_scientific_notation_or_rows_of_zeros(audit, ledger: str) -> None:
    for name, text in human_views(audit, ledger).items():
        assert not SCI.search(text), f"{name}: {SCI.search(text).group()!r} in\n{text}"
        assert not ZEROS.search(text), f"{name}: a row of zeros in\n{text}"


def test_amounts_scale_from_milligrams_to_tonnes(audit, ledger: str) -> None:
    views = human_views(audit, ledger)
    tiny, huge = views["report --sweep tiny"], views["report --sweep huge"]
    assert "mg CO2e" in tiny and "mWh" in tiny
    assert "t CO2e" in huge and "MWh" in huge and "GPU-h" in huge and "25,600" in huge
    assert "passenger flights New York - San Francisco (Strubell et al. 2019" in huge
    assert "driving a typical passenger car" in tiny and "US EPA 2023" in tiny
    # one unit per column: the whole project's table shows the tiny search beside the huge one
    [row] = [line for line in views["table"].splitlines() if line.startswith("tiny ")]  # (not "tiny: budget ...")
    assert "< 0.1" in row or "< 1" in row or "< 0.01" in row
    assert "stopped by its budget of 18 MWh (IT energy, before PUE): 17.9 MWh spent, and the next trial's forecast of 280 kWh" in huge
    assert "< $0.01" in views["priced"].split("tiny", 1)[1].splitlines()[0]  # a sub-cent cost is not $0.00


def test_the_statement_reads_like_a_paper(audit, ledger: str) -> None:
    text = audit("report", "--ledger", ledger, "--format", "statement").out
    assert re.search(r"over \d[\d.,]* days", text) and "GPU-hours" in text
    latex = text.split("LaTeX:", 1)[1]
    assert "t CO$_2$e" in latex and "<" not in latex.replace("\\textless{}", "")


def test_printed_amounts_are_the_report_figures(audit, ledger: str) -> None:
    """The sentence's CO2e parses back to the JSON's within its printed precision; CSV and JSON
    keep base units at full precision."""
    data = json.loads(audit("report", "--ledger", ledger, "--sweep", "huge", "--format", "json").out)
    text = audit("report", "--ledger", ledger, "--sweep", "huge", "--format", "markdown").out
    said = re.search(r"the whole development cost ([\d.,]+ \S+ CO2e)", text).group(1)
    assert parse_quantity(said).value == pytest.approx(data["totals"]["co2e_kg"], rel=5e-3)
    rows = list(csv.DictReader(io.StringIO(audit("report", "--ledger", ledger, "--sweep", "huge", "--format", "csv").out)))
    assert float(rows[-1]["co2e_kg"]) == data["totals"]["co2e_kg"]  # full precision, in kg
    assert set(data["totals"]) >= {"energy_kwh", "co2e_kg", "gpu_hours"}


def test_ray_trials_sort_as_people_count(audit, ledger: str) -> None:
    lines = audit("trials", "huge", "--ledger", ledger).out.splitlines()[1:]
    labels = [line.split()[0] for line in lines if line.strip() and line.split()[0][0].isdigit()]
    assert labels[:12] == [f"{i}_lr=0.1" for i in range(12)]


def test_plots_read_in_scaled_units_with_the_budget_line(tmp_path: Path, ledger: str) -> None:
    with Ledger.open(ledger) as store:
        for sweep in ("tiny", "huge"):
            report = build_report(store, CarbonModel(region=resolve_region("DE")), [sweep])
            figures = figures_for(store, report, [sweep], None)
            labels = []
            for fig in figures.values():
                fig.canvas.draw()
                for ax in fig.axes:
                    assert ax.yaxis.get_offset_text().get_text() == "", f"{sweep}: an offset on the amounts"
                    for axis in (ax.xaxis, ax.yaxis):
                        labels.append(axis.get_offset_text().get_text())  # the time axis's date, once
                        labels += [t.get_text() for t in axis.get_ticklabels()]
                    labels.append(ax.get_ylabel() + ax.get_xlabel())
            text = " ".join(labels)
            assert not SCI.search(text) and "1e" not in text and ".800000" not in text, text
            over_time = figures["co2e-over-time"]
            legend = [t.get_text() for t in over_time.axes[0].get_legend().get_texts()]
            close_figures(figures)
    # the huge search's energy budget (known from its events), on a right-hand axis in its own unit
    assert "budget 18 MWh" in legend and "MWh" in over_time.axes[1].get_ylabel()


def test_html_headline_and_table_use_the_scaled_units(ledger: str) -> None:
    with Ledger.open(ledger) as store:
        report = build_report(store, CarbonModel(), ["tiny"])
        page = render_html(report, {})
    assert "mg CO2e</th>" in page and "kgCO2e" not in page


def test_closing_hints_say_what_the_user_can_still_do(audit, tmp_path: Path) -> None:
    from auditor.integrations.optuna import AuditCallback

    ledger = str(tmp_path / "l.db")
    callback = AuditCallback(ledger=ledger, sweep="cpu")  # no region set: the sweep keeps the world average
    optuna.create_study(study_name="cpu").optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2, callbacks=[callback])
    callback.close()
    plain = audit("report", "--ledger", ledger).out
    assert "audit report --region CODE" in plain and "--price-per-kwh USD" in plain
    assert "--price-per-gpu-hour" not in plain  # no GPU ran: a GPU-hour price would cost nothing
    with_region = audit("report", "--ledger", ledger, "--region", "DE", "--price-per-kwh", "0.3").out
    assert "--region" not in with_region and "--price-per" not in with_region
    assert audit("config", "set", "region", "FR").code == 0
    configured = audit("report", "--ledger", ledger).out
    assert "audit report --region FR recomputes it" in configured and "--region CODE" not in configured


def test_progress_bars_stay_off_pipes(audit, tmp_path: Path) -> None:
    from rich.console import Console

    from auditor.cli.common import progress_bar

    emissions = tmp_path / "emissions.csv"
    emissions.write_text("timestamp,project_name,run_id,duration,cpu_energy,gpu_energy,ram_energy\n"
                         "2024-01-01T00:00:00,p,r1,60,0.001,0.002,0.0001\n")
    result = audit("import", "codecarbon", str(emissions), "--ledger", str(tmp_path / "l.db"))
    assert result.code == 0, result.err
    assert "━" not in result.err and "Importing" not in result.err
    terminal = io.StringIO()
    with progress_bar("Importing trials", Console(file=terminal, force_terminal=True, width=80)) as update:
        update(500, 1000)
    assert "Importing trials" in terminal.getvalue()
    piped = io.StringIO()
    with progress_bar("Importing trials", Console(file=piped, width=80)) as update:
        update(500, 1000)
    assert piped.getvalue() == ""


def test_markdown_and_statement_of_one_tiny_report(ledger: str) -> None:
    with Ledger.open(ledger) as store:
        report = build_report(store, CarbonModel(), ["tiny"])
    markdown, statement = render_markdown(report), render_statement(report)
    assert "| mg CO2e |" in markdown or "| g CO2e |" in markdown
    assert Metric.CO2E_KG.unit not in markdown + statement  # never 'kgCO2e' glued to a tiny number
