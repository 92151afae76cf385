"""The report as one self-contained HTML file: tables, findings and plots, no network, no CDN.

Every string is escaped with ``html.escape``; the plots are inline SVG whose text is drawn as
paths, so no user string reaches the markup unescaped.
"""

from __future__ import annotations

import html
from typing import Any

from auditor.ledger import Ledger
from auditor.model.text import counted, printable
from auditor.model.units import JOULES_PER_KWH, Metric, format_quantity
from auditor.report.formats import findings, table_rows, times
from auditor.report.plots import report_figures, to_svg

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:60rem;color:#1a202c;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem} .sub{color:#4a5568;margin-top:0}
table{border-collapse:collapse;width:100%;margin:1rem 0;font-size:.9rem}
th,td{border-bottom:1px solid #e2e8f0;padding:.35rem .5rem;text-align:right} th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}
tr.total td{font-weight:600;border-top:2px solid #a0aec0}
.headline{font-size:1.1rem;background:#f7fafc;border-left:4px solid #2b6cb0;padding:.6rem 1rem}
figure{margin:1.2rem 0} figure svg{width:100%;height:auto}
footer{color:#718096;font-size:.8rem;margin-top:2rem}
"""


def figures_for(ledger: Ledger, report: dict[str, Any], sweeps: list[str] | None, since: float | None) -> dict[str, Any]:
    """The report's plots, drawn from the ledger's trials."""
    region, pue = report["region"], report["pue"]["value"]
    common = pue * region["g_co2e_per_kwh"] / 1000 / JOULES_PER_KWH
    # each sweep's CO2e per joule as the report computed it (its own grid, hourly series, PUE),
    # so the cumulative line ends on the report's total
    kg_per_joule = {s["name"]: s["co2e_kg"] / (s["energy_kwh"] * JOULES_PER_KWH) if s["energy_kwh"] else common
                    for s in report["sweeps"]}
    budget = plotted_budget(report)
    minimize = {s.name: ((s.attrs or {}).get("directions") or ["minimize"])[0] != "maximize"
                for s in ledger.sweeps() if not sweeps or s.name in sweeps}
    return report_figures(ledger.trial_points(sweeps, since), kg_per_joule, budget, minimize)


def plotted_budget(report: dict[str, Any]) -> tuple[Metric, float] | None:
    """The budget the CO2e plot draws, as its metric and limit: the sweep's own when the report
    shows one sweep, else a project-wide budget (a sweep's own says nothing about the cumulative
    line of several). Known from the budget the sweep was started with, or from its events
    (a search records them from 50 % spent).

    Example:
        >>> event = {"scope": "sweep", "metric": "energy_kwh", "limit": 2e-5}
        >>> plotted_budget({"sweeps": [{"budget_events": [event]}]})
        (<Metric.ENERGY_KWH: 'energy_kwh'>, 2e-05)
        >>> plotted_budget({"sweeps": [{"budget_events": [], "budget": {**event, "limit": 3e-5}}]})
        (<Metric.ENERGY_KWH: 'energy_kwh'>, 3e-05)
    """
    found = None
    for sweep in report["sweeps"]:
        for budget in [*([sweep["budget"]] if sweep.get("budget") else []), *sweep["budget_events"]]:
            if len(report["sweeps"]) > 1 and budget["scope"] != "project":
                continue
            found = (Metric(budget["metric"]), budget["limit"])
    return found


def render_html(report: dict[str, Any], figures: dict[str, Any]) -> str:
    """The whole page."""
    def e(text: str) -> str:
        return html.escape(printable(text))  # bidi overrides shown, not obeyed

    region, totals = report["region"], report["totals"]
    headers, cells = table_rows(report)
    rows = []
    for i, row in enumerate(cells):
        css = ' class="total"' if i == len(cells) - 1 else ""
        rows.append(f"<tr{css}>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>")
    head = "".join(f"<th>{e(header)}</th>" for header in headers)
    plots = "\n".join(f'<figure id="{e(stem)}">{to_svg(fig)}</figure>' for stem, fig in figures.items())
    sentences = "".join(f"<li>{e(s)}</li>" for s in findings(report))
    headline = ""
    if report["final_run"] and report["search_to_final_ratio"] is not None and report["search_to_final_ratio"] >= 0.01:
        headline = (
            f'<p class="headline">The search cost <strong>{times(report["search_to_final_ratio"])} times</strong> the final '
            f"training run ({e(report['final_run']['name'])}).</p>"
        )
    grid = f"{e(region['name'])}, {region['g_co2e_per_kwh']:g} gCO2e/kWh ({e(region['source'])})"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>Development footprint</title><style>{STYLE}</style></head>
<body>
<h1>Development footprint</h1>
<p class="sub">{counted(totals['trials'], 'trial')} in {counted(len(report['sweeps']), 'sweep')} · {e(format_quantity(Metric.CO2E_KG, totals['co2e_kg']))} ·
{e(format_quantity(Metric.GPU_HOURS, totals['gpu_hours'], long=True))} · grid {grid} · PUE {report['pue']['value']:g}</p>
{headline}
<table><thead><tr>{head}</tr></thead>
<tbody>{''.join(rows)}</tbody></table>
<ul>{sentences}</ul>
{plots}
<footer>Ledger {e(report['ledger'])} · {e(report['generator'])} · report format {report['version']} ·
PUE: {e(report['pue']['source'])}</footer>
</body></html>
"""
