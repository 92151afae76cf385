"""`audit report`: the whole development footprint of the ledger's sweeps."""

from __future__ import annotations

import io
import time
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from auditor.cli.common import (
    LEDGER_HELP,
    console,
    fit_headers,
    make_table,
    number_in,
    open_ledger,
    settings_with,
    to_json,
    working,
    write_atomically,
)
from auditor.config import carbon_model, live_source
from auditor.errors import AuditorError, InvalidInputError
from auditor.ledger import Ledger
from auditor.model.carbon import Overrides, Price
from auditor.model.regions import resolve_region
from auditor.model.series import IntensitySeries, parse_duration
from auditor.model.text import counted
from auditor.model.units import format_share, parse_intensity
from auditor.report.build import build_report
from auditor.report.embodied import EmbodiedSettings, embodied_sentence, water_sentence
from auditor.report.formats import (
    budget_sentences,
    equivalent_sentence,
    final_run_sentence,
    held_back_sentence,
    mixed_grids,
    render_csv,
    render_markdown,
    render_statement,
    stops,
    table_rows,
    without_energy_sentence,
)
from auditor.report.grid import market_sentence, shift_sentences
from auditor.report.html import figures_for, render_html
from auditor.report.outlook import outlook_sentences
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
    pue: float | None = typer.Option(None, "--pue", parser=number_in(1.0), metavar="NUMBER",
                                     help="Recompute every sweep with this PUE (default: each sweep's own)."),
    price_per_gpu_hour: float | None = typer.Option(None, "--price-per-gpu-hour", parser=number_in(0.0), metavar="NUMBER",
                                                    help="Cost every sweep at this USD per GPU-hour (a cloud bill)."),
    price_per_kwh: float | None = typer.Option(None, "--price-per-kwh", parser=number_in(0.0), metavar="NUMBER",
                                               help="Cost every sweep at this USD per facility kWh (own hardware)."),
    ledger: str | None = typer.Option(None, "--ledger", help=LEDGER_HELP),
    output: ReportFormat = typer.Option(ReportFormat.table, "--format", help="table, markdown, json, csv, statement or html.", case_sensitive=False),
    out: Path | None = typer.Option(None, "--out", help="Write the report to this file instead of the screen."),
    plots: Path | None = typer.Option(None, "--plots", help="Also write the plots as PNG and SVG into this directory."),
    intensity_series: Path | None = typer.Option(
        None, "--intensity-series", help="CSV of the grid's intensity over time (timestamp, intensity_g_per_kwh; or an "
        "Electricity Maps or WattTime export): each trial is charged the hours it ran in, every sweep."),
    market_intensity: str | None = typer.Option(
        None, "--market-intensity", help="A market-based factor such as '120 g/kWh' (renewable contracts): a market-based "
        "CO2e beside the location-based one."),
    shift: str | None = typer.Option(None, "--shift", help="With a series: what each sweep would have emitted started at "
                                     "the cleanest time within this window after it started ('24h')."),
    embodied_kg: str | None = typer.Option(
        None, "--embodied-kg", metavar="KG|table", help="Add embodied carbon (making the hardware), on its own: kg CO2e per "
        "GPU with its server share (BLOOM: 462.5 per A100), or 'table' for each GPU model's figure (setting embodied)."),
    lifetime_years: float | None = typer.Option(None, "--lifetime-years", help="Years a GPU serves, for embodied carbon (default 6)."),
    utilization: float | None = typer.Option(None, "--utilization", help="Share of its life a GPU is busy, 0-1, for embodied carbon (default 0.85)."),
    wue: float | None = typer.Option(None, "--wue", help="Add the water used on site: litres per IT kWh (setting wue)."),
) -> None:
    """Report energy, CO2e, cost and GPU-hours of every sweep, and of the whole project."""
    settings = settings_with(ledger=ledger, region=region, pue=pue, embodied=embodied_kg, lifetime_years=lifetime_years,
                             utilization=utilization, wue=wue)
    if settings.embodied is None and (lifetime_years is not None or utilization is not None):
        raise InvalidInputError("--lifetime-years and --utilization are for embodied carbon: give --embodied-kg KG|table too "
                                "(or set embodied: audit config set embodied table)")
    since_ts = _since(since)
    shift_s = parse_duration(shift) if shift is not None else None
    series = IntensitySeries.load(intensity_series) if intensity_series is not None else None
    market = parse_intensity(market_intensity) if market_intensity is not None else None
    with open_ledger(settings) as (store, missing):
        sweep = store.named_sweeps(sweep) if sweep else sweep
        if series is None and settings.intensity_series is None:  # no file given: the live source, when on
            series = live_series(store, settings, sweep, since_ts, shift_s)
        with working("Reading the ledger"):
            report = build(store, settings, sweep, since_ts,
                           overrides_from(region, pue, Price(price_per_gpu_hour, price_per_kwh), series, market), shift_s)
        report["held_back_trials"] = missing
        figures = {}
        if output is ReportFormat.html or plots:
            with working("Drawing the plots"):
                figures = figures_for(store, report, sweep, since_ts)
    if plots is not None:
        try:
            written = save_figures(dict(figures), plots)
        except OSError as exc:
            raise AuditorError(f"cannot write plots into {plots}: {exc.strerror}") from None
        typer.echo(f"{len(written)} plot files written to {plots}", err=True)
    hints = next_steps(report, settings.region if region is None else region,
                       priced_here=price_per_gpu_hour is not None or price_per_kwh is not None)
    if output is ReportFormat.table and out is None:
        close_figures(figures)
        print_report(report, hints=hints)
        return
    renderers = {
        ReportFormat.json: lambda r: to_json(r) + "\n",
        ReportFormat.markdown: render_markdown,
        ReportFormat.csv: render_csv,
        ReportFormat.statement: render_statement,
        ReportFormat.table: lambda r: render_table(r, hints),
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


def live_series(store: Ledger, settings: Any, sweeps: list[str] | None, since: float | None,
                shift_s: float | None = None, now: float | None = None) -> IntensitySeries | None:
    """The hours the report's trials span, from the live source the settings turn on
    (``live_intensity``; cached on disk), or None when it is off or there are no trials. With
    ``shift_s`` the hours after them, up to the window or now, are asked for too (best effort:
    hours already cached for the trials are not asked again for it)."""
    source = live_source(settings)
    if source is None:
        return None
    rows = [row for row in store.aggregate(since) if not sweeps or row.sweep in sweeps]
    starts = [row.first_start for row in rows if row.first_start is not None]
    if not starts:
        return None
    ends = [row.last_end for row in rows if row.last_end is not None]
    start, end = min(starts), max(ends + starts)
    now = time.time() if now is None else now
    with working(f"Fetching the grid's hours for zone {source.zone} from Electricity Maps"):
        series = source.series(start, end, now=now)
        if shift_s and end < now and series.end < min(end + shift_s, now):
            try:
                series = source.series(start, min(end + shift_s, now), now=now)
            except AuditorError:
                pass  # the shift tries the starts the series covers; the trials' own hours are there
    return series


def overrides_from(region: str | None, pue: float | None, price: Price | None = None,
                   series: IntensitySeries | None = None, market_g_per_kwh: float | None = None) -> Overrides:
    """The report's own --region, --pue, price, --intensity-series and --market-intensity,
    which replace every sweep's recorded ones."""
    return Overrides(region=resolve_region(region) if region else None, pue=pue,
                     price=price if price is not None and price.is_set else None, series=series,
                     market_g_per_kwh=market_g_per_kwh)


def build(store: Ledger, settings: Any, sweeps: list[str] | None, since: float | None = None,
          overrides: Overrides | None = None, shift_s: float | None = None) -> dict[str, Any]:
    """The report of ``sweeps`` (all when None): each sweep with the settings it ran with,
    ``overrides`` in their place, and the settings in force for sweeps recorded without any;
    embodied carbon and water when the settings ask for them."""
    embodied = EmbodiedSettings.from_setting(settings.embodied, settings.lifetime_years, settings.utilization)
    return build_report(store, carbon_model(settings), sweeps or None, since, overrides, shift_s=shift_s,
                        embodied=embodied, wue_l_per_kwh=settings.wue)


def render_table(report: dict[str, Any], hints: list[str] | None = None) -> str:
    """The terminal report as plain text (``--format table --out FILE``)."""
    text = io.StringIO()
    print_report(report, console(text), hints)
    return text.getvalue()


def next_steps(report: dict[str, Any], region_setting: str | None = None, priced_here: bool = False) -> list[str]:
    """What this user can still do, as closing hints: set a grid only where a sweep ran without
    one (with the region they already set, if they did), and give a price where none is known
    (per kWh only when no GPU ran: a GPU-hour price would cost nothing).

    Example:
        >>> report = {"sweeps": [{"name": "a", "region": {"is_fallback": False}}],
        ...           "totals": {"cost_usd": None, "gpu_hours": 0.0}}
        >>> next_steps(report)
        ['Add what it cost: audit report --price-per-kwh USD (your electricity price per kWh).']
    """
    hints = []
    unset = [s["name"] for s in report["sweeps"] if s["region"]["is_fallback"]]
    if unset:
        which = "" if len(unset) == len(report["sweeps"]) else f" ({', '.join(unset)} ran with no region set)"
        if region_setting:
            hints.append(f"Carbon uses the world average where a search ran with no region{which}: "
                         f"audit report --region {region_setting} recomputes it with your region.")
        else:
            hints.append(f"Set the grid for exact carbon{which}: audit report --region CODE (your country or cloud region: "
                         "audit regions), and audit config set region CODE for the next searches.")
    if report["totals"]["cost_usd"] is None and not priced_here:
        if report["totals"]["gpu_hours"]:
            hints.append("Add what it cost: audit report --price-per-gpu-hour USD (a cloud bill) or --price-per-kwh USD "
                         "(own hardware).")
        else:
            hints.append("Add what it cost: audit report --price-per-kwh USD (your electricity price per kWh).")
    return hints


def print_report(report: dict[str, Any], out: Console | None = None, hints: list[str] | None = None) -> None:
    """The report as a table (each amount column in one unit), a few sentences and what to do
    next (``hints``; by default :func:`next_steps` of the report alone)."""
    out = out or console()

    def say(text: str) -> None:  # sentences are never folded by us: the terminal wraps them, a file keeps one line each
        out.print(text, soft_wrap=True)

    region, pue, totals = report["region"], report["pue"], report["totals"]
    figure = f"{region['g_co2e_per_kwh']:g} g/kWh"
    named = "" if region["code"].replace(" ", "") == figure.replace(" ", "") else f"{region['code']} "  # an intensity given as such
    grid = f"grid {named}{figure} ({region['source']}) · PUE {pue['value']:g}"
    if region["is_fallback"]:
        grid = f"grid: world average {region['g_co2e_per_kwh']:g} g/kWh, no region set · PUE {pue['value']:g}"
    if mixed_grids(report):
        grid = "grid and PUE: each sweep's own, as it ran (column grid)"
    say(f"Ledger {report['ledger']} · {counted(len(report['sweeps']), 'sweep')} · {counted(totals['trials'], 'trial')} · {grid}")
    headers, rows = table_rows(report)
    table = make_table(*headers)
    for column in table.columns[2:]:
        column.justify = "right" if column.header != "grid" else "left"
    for row in rows:
        table.add_row(*row)
    out.print(fit_headers(table, out))
    for name, why in stops(report):
        say(f"{name}: {why}.")
    for sentence in budget_sentences(report):
        say(sentence)
    for sentence in outlook_sentences(report):  # forecasts and energy drivers
        say(sentence)
    market = market_sentence(report)
    if market:
        say(market)
    for sentence in shift_sentences(report):
        say(sentence)
    final = final_run_sentence(report)
    if final:
        say(final)
    if totals["waste_fraction"] is not None:
        say(f"Pruned, stopped and failed trials used {format_share(totals['waste_fraction'])} of the energy.")
    if totals["idle_fraction"]:
        say("Outside trials (idle devices, the search's own processes): "
            f"{format_share(totals['idle_fraction'])} of the energy.")
    said = equivalent_sentence(report)
    if said:
        say(said)
    for extra in (embodied_sentence(report), water_sentence(report)):  # when set
        if extra:
            say(extra)
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
    for hint in next_steps(report) if hints is None else hints:
        say(hint)
