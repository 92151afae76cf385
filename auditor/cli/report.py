"""`audit report`: the whole development footprint of the ledger's sweeps."""

from __future__ import annotations

import io
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from auditor.cli.common import (
    LEDGER_HELP,
    console,
    make_table,
    open_ledger,
    settings_with,
    to_json,
    write_atomically,
)
from auditor.config import carbon_model
from auditor.errors import AuditorError, InvalidInputError, LedgerError
from auditor.ledger import Ledger
from auditor.model.carbon import Overrides, Price
from auditor.model.regions import resolve_region
from auditor.model.text import counted
from auditor.model.units import format_number, format_share
from auditor.report.build import build_report
from auditor.report.formats import (
    grid_of,
    held_back_sentence,
    mixed_grids,
    render_csv,
    render_markdown,
    render_statement,
    times,
    without_energy_sentence,
)
from auditor.report.html import figures_for, render_html
from auditor.report.plots import close_figures, save_figures


class ReportFormat(str, Enum):
    table = "table"
    markdown = "markdown"
    json = "json"
    csv = "csv"
    statement = "statement"
    html = "html"


def _since(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(f"cannot read date {text!r}: write it as 2026-11-24 or 2026-11-24T13:00") from None
    return moment.timestamp()


def report_command(
    sweep: list[str] | None = typer.Option(None, "--sweep", help="Only this sweep (repeatable)."),
    since: str | None = typer.Option(None, "--since", help="Only trials started on or after this date (2026-11-24)."),
    region: str | None = typer.Option(None, "--region", help="Recompute every sweep's carbon for this grid (default: each sweep's own)."),
    pue: float | None = typer.Option(None, "--pue", min=1.0, help="Recompute every sweep with this PUE (default: each sweep's own)."),
    price_per_gpu_hour: float | None = typer.Option(None, "--price-per-gpu-hour", min=0.0,
                                                    help="Cost every sweep at this USD per GPU-hour (a cloud bill)."),
    price_per_kwh: float | None = typer.Option(None, "--price-per-kwh", min=0.0,
                                               help="Cost every sweep at this USD per facility kWh (own hardware)."),
    ledger: str | None = typer.Option(None, "--ledger", help=LEDGER_HELP),
    output: ReportFormat = typer.Option(ReportFormat.table, "--format", help="table, markdown, json, csv, statement or html.", case_sensitive=False),
    out: Path | None = typer.Option(None, "--out", help="Write the report to this file instead of the screen."),
    plots: Path | None = typer.Option(None, "--plots", help="Also write the plots as PNG and SVG into this directory."),
) -> None:
    """Report energy, CO2e, cost and GPU-hours of every sweep, and of the whole project."""
    settings = settings_with(ledger=ledger, region=region, pue=pue)
    since_ts = _since(since)
    with open_ledger(settings) as (store, missing):
        known = {s.name for s in store.sweeps()}
        for name in sweep or []:
            if name not in known:
                raise LedgerError(f"no sweep called {name!r} in {store.location}: it holds {', '.join(sorted(known)) or 'none yet'}")
        report = build(store, settings, sweep, since_ts, overrides_from(region, pue, Price(price_per_gpu_hour, price_per_kwh)))
        report["held_back_trials"] = missing
        figures = {}
        if output is ReportFormat.html or plots:
            with Console(stderr=True).status("Drawing the plots"):
                figures = figures_for(store, report, sweep, since_ts)
    if plots is not None:
        try:
            written = save_figures(dict(figures), plots)
        except OSError as exc:
            raise AuditorError(f"cannot write plots into {plots}: {exc.strerror}") from None
        typer.echo(f"{len(written)} plot files written to {plots}", err=True)
    if output is ReportFormat.table and out is None:
        close_figures(figures)
        print_report(report)
        return
    renderers = {
        ReportFormat.json: lambda r: to_json(r) + "\n",
        ReportFormat.markdown: render_markdown,
        ReportFormat.csv: render_csv,
        ReportFormat.statement: render_statement,
        ReportFormat.table: render_table,
        ReportFormat.html: lambda r: render_html(r, figures),
    }
    text = renderers[output](report)
    close_figures(figures)
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        write_atomically(out, text)
    except OSError as exc:
        raise AuditorError(f"cannot write {out}: {exc.strerror}") from None
    typer.echo(f"report written to {out}", err=True)


def overrides_from(region: str | None, pue: float | None, price: Price | None = None) -> Overrides:
    """The report's own --region, --pue and price, which replace every sweep's recorded ones."""
    return Overrides(region=resolve_region(region) if region else None, pue=pue,
                     price=price if price is not None and price.is_set else None)


def build(store: Ledger, settings: Any, sweeps: list[str] | None, since: float | None = None,
          overrides: Overrides | None = None) -> dict[str, Any]:
    """The report of ``sweeps`` (all when None): each sweep with the settings it ran with,
    ``overrides`` in their place, and the settings in force for sweeps recorded without any."""
    return build_report(store, carbon_model(settings), sweeps or None, since, overrides)


def render_table(report: dict[str, Any]) -> str:
    """The terminal report as plain text (``--format table --out FILE``)."""
    text = io.StringIO()
    print_report(report, console(text))
    return text.getvalue()


def print_report(report: dict[str, Any], out: Console | None = None) -> None:
    """The report as a table, a few sentences and what to do next."""
    out = out or console()

    def say(text: str) -> None:  # sentences are never folded by us: the terminal wraps them, a file keeps one line each
        out.print(text, soft_wrap=True)

    region, pue, totals = report["region"], report["pue"], report["totals"]
    mixed = mixed_grids(report)
    grid = f"grid {region['code']} {region['g_co2e_per_kwh']:g} g/kWh ({region['source']}) · PUE {pue['value']:g}"
    if region["is_fallback"]:
        grid = f"grid: world average {region['g_co2e_per_kwh']:g} g/kWh, no region set · PUE {pue['value']:g}"
    if mixed:
        grid = "grid and PUE: each sweep's own, as it ran (column grid)"
    say(f"Ledger {report['ledger']} · {counted(len(report['sweeps']), 'sweep')} · {counted(totals['trials'], 'trial')} · {grid}")
    priced = totals["cost_usd"] is not None
    headers = ["sweep", "framework", "trials (done/stopped/failed)", "GPU-h", "IT kWh", "facility kWh", "kgCO2e", "measured"]
    table = make_table(*headers, *(["USD"] if priced else []), *(["grid"] if mixed else []))
    for row in [*report["sweeps"], {"name": "whole project", "framework": "", **totals}]:
        states = row["trials_by_state"]
        counts = f"{row['trials']} ({states.get('complete', 0)}/{states.get('pruned', 0) + states.get('stopped', 0)}/{states.get('failed', 0) + states.get('interrupted', 0)})"
        measured = format_share(row["measured_fraction"])
        cells = [row["name"], row["framework"], counts, format_number(row["gpu_hours"]), format_number(row["energy_kwh"]),
                 format_number(row["facility_kwh"]), format_number(row["co2e_kg"]), measured]
        table.add_row(*cells, *([f"${row['cost_usd']:,.2f}"] if priced else []),
                      *([grid_of(row) if "region" in row else ""] if mixed else []))
    out.print(table)
    for sweep in report["sweeps"]:
        for event in sweep["budget_events"]:
            if event["action"] in ("stop-new", "stop-all"):
                say(f"{sweep['name']}: stopped by its budget {event['budget']}: {event['reason']}")
    if report["final_run"] and report["search_to_final_ratio"] is not None:
        final = report["final_run"]
        say(
            f"The final run ({final['name']}, {final['kind']}) cost {format_number(final['co2e_kg'])} kgCO2e; the development that "
            f"found it cost {format_number(totals['co2e_kg'])} kgCO2e: {times(report['search_to_final_ratio'])}x the final run."
        )
    if totals["waste_fraction"] is not None:
        say(f"Pruned, stopped and failed trials used {format_share(totals['waste_fraction'])} of the energy.")
    if totals["idle_fraction"]:
        say(f"Idle time between trials: {format_share(totals['idle_fraction'])} of the energy.")
    flights = report["equivalents"]["flights_ny_sf"]
    say(f"That is about {flights:.2g} passenger flights New York - San Francisco (1,984 lb CO2e each, Strubell et al. 2019).")
    if totals["measured_fraction"] is not None and totals["measured_fraction"] < 0.995:  # never "0% estimated"
        say(
            f"Estimated, not measured: {format_share(1 - totals['measured_fraction'])} (see `audit doctor` for what this machine can measure)."
        )
    missing = held_back_sentence(report)
    if missing:
        say(missing)
    without = without_energy_sentence(report)
    if without:
        say(without)
    unset = [s["name"] for s in report["sweeps"] if s["region"]["is_fallback"]]
    if unset:
        which = "" if len(unset) == len(report["sweeps"]) else f" ({', '.join(unset)} ran with no region set)"
        say(f"Set the grid for exact carbon{which}: audit report --region DE (or `audit config set region ...` "
            "for the next searches).")
