"""The report as Markdown, CSV and a statement ready to paste into a paper.

Every string that comes from users (sweep names, final run names) is escaped for the format it
lands in.

Example:
    >>> latex_escape("lr_search 50% & $5")
    'lr\\\\_search 50\\\\% \\\\& \\\\$5'
"""

from __future__ import annotations

import csv
import io
from typing import Any

from auditor.model.text import csv_cell, printable
from auditor.model.units import format_number, format_share

CSV_COLUMNS = [
    "sweep", "framework", "trials", "complete", "pruned", "failed", "gpu_hours", "energy_kwh",
    "facility_kwh", "co2e_kg", "cost_usd", "measured_fraction", "waste_fraction", "stopped_by_budget",
    # added in 0.1 without a version change (columns are only ever added at the end):
    "stopped", "interrupted", "region", "g_co2e_per_kwh", "pue", "settings_from", "trials_without_energy",
]
_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
          "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """``text`` safe to put in LaTeX."""
    return "".join(_LATEX.get(ch, ch) for ch in printable(text))


def markdown_escape(text: str) -> str:
    """``text`` safe in a Markdown table cell (no HTML, no cell breaks, no emphasis)."""
    escaped = printable(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "*_`[]#":
        escaped = escaped.replace(ch, "\\" + ch)
    return " ".join(escaped.split())


def _rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    whole = {"name": "whole project", "framework": "", **report["totals"], "stopped_by_budget": None,
             "region": report["region"], "pue": report["pue"], "settings_from": None}
    return [*report["sweeps"], whole]


def mixed_grids(report: dict[str, Any]) -> bool:
    """True when the report's sweeps were run on different grids or PUEs (each is shown)."""
    return len({(s["region"]["code"], s["region"]["g_co2e_per_kwh"], s["pue"]["value"]) for s in report["sweeps"]}) > 1


def grid_of(row: dict[str, Any]) -> str:
    """A sweep's grid and PUE in a few words: ``FR 56 g/kWh, PUE 1.2``."""
    return f"{row['region']['code']} {row['region']['g_co2e_per_kwh']:.4g} g/kWh, PUE {row['pue']['value']:.3g}"


def csv_row(row: dict[str, Any]) -> dict[str, Any]:
    """A CSV row whose texts no spreadsheet runs as formulas (:func:`~auditor.model.text.csv_cell`)."""
    return {key: csv_cell(value) for key, value in row.items()}


def render_csv(report: dict[str, Any]) -> str:
    """One row per sweep and one for the whole project (``sweep`` = ``whole project``)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in _rows(report):
        states = row["trials_by_state"]
        writer.writerow(csv_row({
            "sweep": row["name"], "framework": row["framework"], "trials": row["trials"],
            "complete": states.get("complete", 0), "pruned": states.get("pruned", 0), "failed": states.get("failed", 0),
            **{key: row[key] for key in ("gpu_hours", "energy_kwh", "facility_kwh", "co2e_kg", "cost_usd",
                                         "measured_fraction", "waste_fraction", "stopped_by_budget", "settings_from")},
            "stopped": states.get("stopped", 0), "interrupted": states.get("interrupted", 0),
            "trials_without_energy": row.get("trials_without_energy", 0),
            "region": row["region"]["code"], "g_co2e_per_kwh": row["region"]["g_co2e_per_kwh"], "pue": row["pue"]["value"],
        }))
    return out.getvalue()


def times(ratio: float) -> str:
    """A ratio as people say it, never truncated: ``1.9``, ``14``, ``1,250``.

    Example:
        >>> times(1.94), times(14.3), times(1249.6)
        ('1.9', '14', '1,250')
    """
    if ratio < 10:
        return f"{ratio:.2g}" if ratio >= 1 else f"{ratio:.2f}"
    return f"{ratio:,.0f}"


def render_markdown(report: dict[str, Any]) -> str:
    """Headline, one table row per sweep, and the findings in sentences."""
    region, mixed = report["region"], mixed_grids(report)
    headline = (
        "Grid and PUE: each sweep's own, as it ran (column grid)." if mixed else
        f"Grid: {markdown_escape(region['name'])}, {region['g_co2e_per_kwh']:g} gCO2e/kWh ({markdown_escape(region['source'])}). "
        f"PUE {report['pue']['value']:g} ({markdown_escape(report['pue']['source'])})."
    )
    lines = [
        "# Development footprint",
        "",
        headline,
        "",
        "| sweep | framework | trials (done/stopped/failed) | GPU-h | IT kWh | facility kWh | kgCO2e | measured |" + (" grid |" if mixed else ""),
        "| --- | --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if mixed else ""),
    ]
    for row in _rows(report):
        states = row["trials_by_state"]
        counts = f"{row['trials']} ({states.get('complete', 0)}/{states.get('pruned', 0) + states.get('stopped', 0)}/{states.get('failed', 0) + states.get('interrupted', 0)})"
        grid = f" {markdown_escape(grid_of(row)) if row['settings_from'] else ''} |" if mixed else ""
        lines.append(
            f"| {markdown_escape(row['name'])} | {markdown_escape(row['framework'])} | {counts} | {format_number(row['gpu_hours'])} "
            f"| {format_number(row['energy_kwh'])} | {format_number(row['facility_kwh'])} | {format_number(row['co2e_kg'])} | {format_share(row['measured_fraction'])} |{grid}"
        )
    lines.append("")
    lines.extend(f"- {sentence}" for sentence in findings(report, escape=markdown_escape))
    return "\n".join(lines) + "\n"


def held_back_sentence(report: dict[str, Any]) -> str | None:
    """What the report is missing: trials a search could not write to the ledger yet."""
    count = report.get("held_back_trials")
    if not count:
        return None
    return (f"Not in this report: {count} trials held back while the ledger could not be written; "
            "they are added once it can be.")


def without_energy_sentence(report: dict[str, Any]) -> str | None:
    """What the figures leave out: trials whose energy could be neither measured nor estimated."""
    count = report["totals"].get("trials_without_energy", 0)
    if not count:
        return None
    where = ", ".join(f"{s['name']} ({s['trials_without_energy']})" for s in report["sweeps"] if s.get("trials_without_energy"))
    return (f"{count} trials have no energy figure ({where}): they ended before anything measured them (a Ray trial "
            "stopped before its first report) or their meter failed, flagged energy-missing in `audit trials`. "
            "They count as 0 kWh: the totals are a lower bound.")


def findings(report: dict[str, Any], escape: Any = str) -> list[str]:
    """The report's conclusions as sentences."""
    totals, sentences = report["totals"], []
    missing = held_back_sentence(report)
    if missing:
        sentences.append(missing)
    without = without_energy_sentence(report)
    if without:
        sentences.append(escape(without))
    final, ratio = report["final_run"], report["search_to_final_ratio"]
    if final is not None and ratio is not None:
        sentences.append(
            f"The final run ({escape(final['name'])}) cost {format_number(final['co2e_kg'])} kgCO2e; the whole "
            f"development cost {format_number(totals['co2e_kg'])} kgCO2e: the search cost {times(ratio)} times the final run."
        )
    if totals["waste_fraction"] is not None:
        sentences.append(f"Pruned, failed and stopped trials used {format_share(totals['waste_fraction'])} of the energy.")
    if totals.get("idle_fraction"):
        sentences.append(f"Idle time between trials: {format_share(totals['idle_fraction'])} of the energy.")
    for sweep in report["sweeps"]:
        stops = [e for e in sweep["budget_events"] if e["action"] in ("stop-new", "stop-all")]
        if stops:
            sentences.append(f"{escape(sweep['name'])} was stopped by its budget {escape(stops[0]['budget'])}: {escape(stops[0]['reason'])}.")
    flights = report["equivalents"]["flights_ny_sf"]
    sentences.append(f"That is about {flights:.2g} passenger flights New York - San Francisco ({report['equivalents']['flights_source']}).")
    if totals["measured_fraction"] is not None:
        sentences.append(f"Measured with hardware counters: {format_share(totals['measured_fraction'])}; the rest is estimated.")
    return sentences


def render_statement(report: dict[str, Any]) -> str:
    """A paragraph for a paper, in Markdown and in LaTeX."""
    return "Markdown:\n\n" + statement(report, str) + "\n\nLaTeX:\n\n" + statement(report, latex_escape, latex=True) + "\n"


def statement(report: dict[str, Any], escape: Any, latex: bool = False) -> str:
    """The compute statement: hardware, hours, energy, PUE, intensity and source, CO2e, ratio."""
    totals, region, pue = report["totals"], report["region"], report["pue"]
    co2 = "CO$_2$e" if latex else "CO2e"
    pct = "\\%" if latex else "%"
    hardware = ", ".join(f"{escape(model)}" for model in report["hardware"]) or "CPUs only (no GPU was recorded)"
    span = report["span"]
    seconds = (span["last_end"] or 0) - (span["first_start"] or 0) if span["first_start"] else 0
    duration = f"{seconds / 86400:.1f} days" if seconds >= 2 * 86400 else f"{seconds / 3600:.1f} hours"
    searches = len(report["sweeps"])
    text = (
        f"Developing this work took {totals['trials']} training runs across {searches} "
        f"search{'es' if searches != 1 else ''} over {duration}, using {format_number(totals['gpu_hours'])} GPU-hours on {hardware}. "
        f"They drew {format_number(totals['energy_kwh'])} kWh at the devices and {format_number(totals['facility_kwh'])} kWh "
        f"at the facility (PUE {pue['value']:.3g}, {escape(pue['source'])}). "
    )
    if mixed_grids(report):
        grids = "; ".join(sorted({escape(grid_of(s)) for s in report["sweeps"]}))
        text += (f"With the grid and PUE each search ran on ({grids}; energy-weighted mean "
                 f"{region['g_co2e_per_kwh']:.4g} g{co2}/kWh), this is {format_number(totals['co2e_kg'])} kg {co2}")
    else:
        text += (f"At {region['g_co2e_per_kwh']:g} g{co2}/kWh ({escape(region['name'])}; {escape(region['source'])}), "
                 f"this is {format_number(totals['co2e_kg'])} kg {co2}")
    if totals["cost_usd"] is not None:
        cost = f"${totals['cost_usd']:,.2f}"
        text += f" and cost {escape(cost)}"
    text += "."
    if report["final_run"] and report["search_to_final_ratio"] is not None:
        text += (f" The final training run alone accounted for {format_number(report['final_run']['co2e_kg'])} kg {co2}: "
                 f"the search cost {times(report['search_to_final_ratio'])} times the final run.")
    if totals["measured_fraction"] is not None:
        text += f" {totals['measured_fraction'] * 100:.0f}{pct} of the energy was measured with hardware counters; the rest was estimated."
    if totals.get("trials_without_energy"):
        text += (f" {totals['trials_without_energy']} of the {totals['trials']} runs have no energy figure and count as zero, "
                 "so these figures are a lower bound.")
    text += f" Figures recorded with {escape(report['generator'])}."
    return text
