"""The report as Markdown, CSV and a statement ready to paste into a paper.

Every string that comes from users (sweep names, final run names) is escaped for the format it
lands in. Every amount a person reads goes through :mod:`auditor.model.units` (scaled units, 3
significant digits, one unit per table column) and the table, the sentences and the statement
of every human format come from the functions here, so the terminal, Markdown, HTML and the
statement print the same numbers; CSV (and JSON) keep base units at full precision.

Example:
    >>> latex_escape("lr_search 50% & $5")
    'lr\\\\_search 50\\\\% \\\\& \\\\$5'
"""

from __future__ import annotations

import csv
import io
from typing import Any

from auditor.model.equivalents import equivalent
from auditor.model.text import counted, csv_cell, printable, shown_name
from auditor.model.units import (
    Metric,
    column_unit,
    format_column,
    format_cost,
    format_duration,
    format_quantity,
    format_share,
)
from auditor.report.embodied import (
    embodied_sentence,
    extra_columns,
    extra_csv_columns,
    statement_sentence,
    water_sentence,
)
from auditor.report.grid import market_sentence, shift_sentences
from auditor.report.outlook import outlook_sentences

NAME_WIDTH = 32  # a sweep's name in a table: a longer one keeps its start and end (JSON gives it in full)
CSV_COLUMNS = [
    "sweep", "framework", "trials", "complete", "pruned", "failed", "gpu_hours", "energy_kwh",
    "facility_kwh", "co2e_kg", "cost_usd", "measured_fraction", "waste_fraction", "stopped_by_budget",
    # added in 0.1 without a version change (columns are only ever added at the end):
    "stopped", "interrupted", "region", "g_co2e_per_kwh", "pue", "settings_from", "trials_without_energy",
]
_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
          "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
          "<": r"\textless{}", ">": r"\textgreater{}"}


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


def trial_counts(row: dict[str, Any]) -> str:
    """A row's trials as ``total (done/stopped/failed)``."""
    states = row["trials_by_state"]
    stopped = states.get("pruned", 0) + states.get("stopped", 0)
    failed = states.get("failed", 0) + states.get("interrupted", 0)
    return f"{row['trials']:,} ({states.get('complete', 0):,}/{stopped:,}/{failed:,})"


def amount_columns(rows: list[dict[str, Any]], priced: bool) -> list[tuple[str, list[str]]]:
    """The amount columns of the report's table, each in one unit that fits its largest value
    (so rows compare), as ``(header, cells)``: GPU time, IT and facility energy (one unit for
    both), CO2e, and the cost when a price is known.

    Example:
        >>> rows = [{"gpu_hours": 0.0, "energy_kwh": 1.9e-5, "facility_kwh": 3.0e-5, "co2e_kg": 1.44e-5, "cost_usd": None}]
        >>> [(header, cells[0]) for header, cells in amount_columns(rows, priced=False)]
        [('GPU-h', '0'), ('IT mWh', '19.0'), ('facility mWh', '30.0'), ('mg CO2e', '14.4')]
    """
    def values(key: str) -> list[float | None]:
        return [row[key] for row in rows]

    gpu = column_unit(Metric.GPU_HOURS, values("gpu_hours"))
    energy = column_unit(Metric.ENERGY_KWH, values("facility_kwh") + values("energy_kwh"))
    co2e = column_unit(Metric.CO2E_KG, values("co2e_kg"))
    columns = [
        (gpu.symbol, format_column(values("gpu_hours"), gpu)),
        (f"IT {energy.symbol}", format_column(values("energy_kwh"), energy)),
        (f"facility {energy.symbol}", format_column(values("facility_kwh"), energy)),
        (co2e.symbol, format_column(values("co2e_kg"), co2e)),
    ]
    if priced:
        columns.append(("cost USD", [format_cost(value) for value in values("cost_usd")]))
    columns.extend(extra_columns(rows))  # embodied CO2e and water, each in its own unit, when set
    return columns


def table_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The report's table as text cells, one row per sweep and one for the whole project:
    ``(headers, rows)``, the same for the terminal, Markdown and HTML (user text unescaped)."""
    rows = _rows(report)
    priced = report["totals"]["cost_usd"] is not None
    mixed = mixed_grids(report)
    columns = amount_columns(rows, priced)
    headers = ["sweep", "framework", "trials (done/stopped/failed)", *(h for h, _ in columns[:4]), "measured",
               *(h for h, _ in columns[4:]), *(["grid"] if mixed else [])]
    cells = []
    for i, row in enumerate(rows):
        amounts = [column[i] for _, column in columns]
        grid = [grid_of(row) if row["settings_from"] else ""] if mixed else []
        cells.append([shown_name(row["name"], NAME_WIDTH), row["framework"], trial_counts(row), *amounts[:4], format_share(row["measured_fraction"]),
                      *amounts[4:], *grid])
    return headers, cells


def stop_sentence(event: dict[str, Any]) -> str:
    """Why a budget stopped a sweep, from the event's figures (not its stored text, which
    older versions wrote in other units): ``stopped by its budget of 20 mWh (IT energy, before
    PUE): 19.2 mWh spent, and the next trial's forecast of 0.81 mWh would have passed it``.

    Example:
        >>> stop_sentence({"metric": "energy_kwh", "limit": 2e-5, "spent": 1.92e-5, "forecast": 8.1e-7,
        ...                "overshoot": 0.0, "scope": "sweep", "action": "stop-new"})
        "stopped by its budget of 20 mWh (IT energy, before PUE): 19.2 mWh spent, and the next trial's forecast of 0.81 mWh would have passed it"
    """
    metric = Metric(event["metric"])
    limit, spent, forecast = event["limit"], event["spent"], event.get("forecast")
    what = "its project's budget" if event.get("scope") == "project" else "its budget"
    counts = " (IT energy, before PUE)" if metric is Metric.ENERGY_KWH else ""
    text = f"stopped by {what} of {format_quantity(metric, limit)}{counts}: {format_quantity(metric, spent)} spent"
    if spent < limit and forecast is not None:
        return text + f", and the next trial's forecast of {format_quantity(metric, forecast)} would have passed it"
    if spent > limit:
        return text + f", {format_quantity(metric, spent - limit)} over"
    return text


def budget_cell(sweep: dict[str, Any]) -> str:
    """The sweep's budget as its last budget event gave it: the limit, what the sweep has spent
    of it (a sweep-scoped budget) or what was spent when it last spoke (a project budget), and
    whether it stopped the sweep. A sweep whose budget never spoke (under 50 % spent) shows the
    budget it was started with and its own spend; empty for a sweep without a budget.

    Example:
        >>> event = {"budget": "2 kgCO2e", "scope": "sweep", "metric": "co2e_kg", "limit": 2.0, "spent": 1.7,
        ...          "action": "warn"}
        >>> budget_cell({"co2e_kg": 2.1, "stopped_by_budget": True, "budget_events": [event]})
        '2 kg CO2e: 105% spent, stopped'
        >>> started = {"text": "5 kg", "scope": "sweep", "metric": "co2e_kg", "limit": 5.0, "mode": "stop-new"}
        >>> budget_cell({"co2e_kg": 0.5, "stopped_by_budget": False, "budget_events": [], "budget": started})
        '5 kg CO2e: 10% spent'
    """
    if not sweep.get("budget_events") and not sweep.get("budget"):
        return ""
    if not sweep.get("budget_events"):  # it never spoke: the sweep's own spend, or a project budget's limit
        started = sweep["budget"]
        limit = format_quantity(Metric(started["metric"]), started["limit"])
        if started["scope"] != "sweep":
            return f"{limit} (project)"
        return f"{limit}: {format_share(sweep.get(started['metric'], 0.0) / started['limit'])} spent"
    last = sweep["budget_events"][-1]
    limit = format_quantity(Metric(last["metric"]), last["limit"])
    spent = sweep.get(last["metric"], last["spent"]) if last["scope"] == "sweep" else last["spent"]
    share = f"{format_share(spent / last['limit'])} spent" if last["limit"] else ""
    where = "" if last["scope"] == "sweep" else " (project)"
    return f"{limit}{where}: {share}" + (", stopped" if sweep["stopped_by_budget"] else "")


def budget_sentences(report: dict[str, Any], escape: Any = str) -> list[str]:
    """Where each sweep with a budget stands against it, whatever its mode (a budget that stopped
    its sweep is said by :func:`stops`): a ``warn`` budget passed 14 times over says so.

    Example:
        >>> started = {"text": "20 mWh", "scope": "sweep", "metric": "energy_kwh", "limit": 2e-5, "mode": "warn"}
        >>> budget_sentences({"sweeps": [{"name": "s", "energy_kwh": 2.9e-4, "stopped_by_budget": False,
        ...                               "budget_events": [], "budget": started}]})
        ['s: budget 20 mWh (warn): 1450% spent, 14.5 times its limit (warn only: nothing was stopped).']
    """
    said = []
    for sweep in report["sweeps"]:
        cell = budget_cell(sweep)
        if not cell or sweep.get("stopped_by_budget"):
            continue
        budget = sweep.get("budget") or {}
        mode = budget.get("mode") or next((e.get("mode") for e in sweep.get("budget_events", [])), None)
        shown = cell.replace(':', f' ({mode}):', 1) if mode else cell
        text = f"{escape(shown_name(sweep['name']))}: budget {shown}"
        metric, limit = budget.get("metric"), budget.get("limit")
        if budget.get("scope") == "sweep" and metric and limit and sweep.get(metric, 0.0) > limit:
            text += f", {sweep[metric] / limit:.3g} times its limit" + (" (warn only: nothing was stopped)" if mode == "warn" else "")
        said.append(text + ".")
    return said


def stops(report: dict[str, Any]) -> list[tuple[str, str]]:
    """Each sweep a budget stopped, with why: ``(sweep name, sentence)``."""
    found = []
    for sweep in report["sweeps"]:
        for event in sweep["budget_events"]:
            if event["action"] in ("stop-new", "stop-all"):
                found.append((shown_name(sweep["name"], NAME_WIDTH), stop_sentence(event)))
                break
    return found


def final_run_sentence(report: dict[str, Any], escape: Any = printable) -> str | None:
    """The final run against the development that found it, or None without a final run; the
    run's name passed through ``escape`` (default: control characters shown escaped, so that a
    name with a line break stays on the sentence's line)."""
    final, ratio, totals = report["final_run"], report["search_to_final_ratio"], report["totals"]
    if final is None or ratio is None:
        return None
    kind = f", {final['kind']}" if final.get("kind") else ""
    return (f"The final run ({escape(final['name'])}{kind}) cost {format_quantity(Metric.CO2E_KG, final['co2e_kg'])}; "
            f"the whole development cost {format_quantity(Metric.CO2E_KG, totals['co2e_kg'])}: "
            f"{search_cost_phrase(ratio)}.")


def equivalent_sentence(report: dict[str, Any]) -> str | None:
    """The whole footprint against a yardstick of its size, with the yardstick's source."""
    said = equivalent(report["totals"]["co2e_kg"])
    return f"That is {said}." if said else None


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
    extras = extra_csv_columns(report)  # embodied_co2e_kg, total_co2e_kg, water_l: when set, at the end
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS + extras, lineterminator="\n")
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
            **{key: row[key] for key in extras},
        }))
    return out.getvalue()


def times(ratio: float) -> str:
    """A ratio as people say it, to two figures, never truncated: ``1.9``, ``6``, ``14``, ``1,250``.

    Example:
        >>> times(1.94), times(6.03), times(14.3), times(1249.6), times(0.25)
        ('1.9', '6', '14', '1,250', '0.25')
    """
    if ratio < 10:
        return f"{ratio:.2g}"
    return f"{ratio:,.0f}"


def search_cost_phrase(ratio: float, target: str = "the final run") -> str:
    """How the rest of the search compares with ``target``: ``the search cost 6 times the final
    run``; a search that cost next to nothing beside it (one trial, a search killed at once)
    never reads ``0.00 times``.

    Example:
        >>> search_cost_phrase(6.03), search_cost_phrase(0.0)
        ('the search cost 6 times the final run', 'the rest of the search cost under 1% of the final run')
        >>> search_cost_phrase(0.999)
        'the rest of the search cost about as much as the final run'
    """
    if ratio < 0.01:
        return f"the rest of the search cost under 1% of {target}"
    if 0.95 <= ratio < 1.05:  # "1 times" reads as a slip
        return f"the rest of the search cost about as much as {target}"
    return f"the search cost {times(ratio)} times {target}"


def render_markdown(report: dict[str, Any]) -> str:
    """Headline, one table row per sweep (each amount column in one unit), and the findings."""
    region, mixed = report["region"], mixed_grids(report)
    headline = (
        "Grid and PUE: each sweep's own, as it ran (column grid)." if mixed else
        f"Grid: {markdown_escape(region['name'])}, {region['g_co2e_per_kwh']:g} gCO2e/kWh ({markdown_escape(region['source'])}). "
        f"PUE {report['pue']['value']:g} ({markdown_escape(report['pue']['source'])})."
    )
    headers, rows = table_rows(report)
    user_text = {0, 1, len(headers) - 1} if mixed else {0, 1}  # names, frameworks, grids: escaped
    lines = ["# Development footprint", "", headline, "", "| " + " | ".join(headers) + " |",
             "|" + "|".join(" --- " if i in user_text else " ---: " for i in range(len(headers))) + "|"]
    for row in rows:
        cells = [markdown_escape(cell) if i in user_text else cell for i, cell in enumerate(row)]
        lines.append("| " + " | ".join(cells) + " |")
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
    """What the figures leave out: trials whose energy could be neither measured nor estimated,
    and why, for searches recorded live and for imported ones."""
    count = report["totals"].get("trials_without_energy", 0)
    if not count:
        return None
    missing = [s for s in report["sweeps"] if s.get("trials_without_energy")]
    where = ", ".join(f"{shown_name(s['name'])} ({s['trials_without_energy']})" for s in missing)
    why = []
    if any(not s.get("imported") for s in missing):
        why.append("they ended before anything measured them (a Ray trial stopped before its first report) or their meter failed")
    if any(s.get("imported") and s.get("framework") == "codecarbon" for s in missing):
        why.append("their energy cells were empty in the CodeCarbon file they were imported from")
    if any(s.get("imported") and s.get("framework") != "codecarbon" for s in missing):
        why.append("they were imported with no energy figure and no draw to estimate one (import again with --gpu MODEL "
                   "or --watts W)")
    verb = "has" if count == 1 else "have"
    return (f"{counted(count, 'trial')} {verb} no energy figure ({where}): {'; or '.join(why)}; flagged energy-missing "
            "(`audit trials --format json` shows it). They count as 0 kWh: the totals are a lower bound.")


def findings(report: dict[str, Any], escape: Any = str) -> list[str]:
    """The report's conclusions as sentences (Markdown and HTML)."""
    totals, sentences = report["totals"], []
    missing = held_back_sentence(report)
    if missing:
        sentences.append(missing)
    without = without_energy_sentence(report)
    if without:
        sentences.append(escape(without))
    final = final_run_sentence(report, escape)
    if final:
        sentences.append(final)
    if totals["waste_fraction"] is not None:
        sentences.append(f"Pruned, stopped and failed trials used {format_share(totals['waste_fraction'])} of the energy.")
    if totals.get("idle_fraction"):
        sentences.append("Outside trials (idle devices, the search's own processes): "
                         f"{format_share(totals['idle_fraction'])} of the energy.")
    for name, why in stops(report):
        sentences.append(f"{escape(name)} was {why}.")
    sentences.extend(budget_sentences(report, escape))
    sentences.extend(outlook_sentences(report, escape))  # forecasts and energy drivers
    market = market_sentence(report)
    if market:
        sentences.append(market)
    sentences.extend(escape(sentence) for sentence in shift_sentences(report))
    said = equivalent_sentence(report)
    if said:
        sentences.append(said)
    sentences.extend(s for s in (embodied_sentence(report, escape), water_sentence(report)) if s)
    if totals["measured_fraction"] is not None:
        sentences.append(f"Measured with hardware counters: {format_share(totals['measured_fraction'])}; the rest is estimated.")
    return sentences


def render_statement(report: dict[str, Any]) -> str:
    """A paragraph for a paper, in Markdown and in LaTeX."""
    return "Markdown:\n\n" + statement(report, markdown_escape) + "\n\nLaTeX:\n\n" + statement(report, latex_escape, latex=True) + "\n"


def statement(report: dict[str, Any], escape: Any, latex: bool = False) -> str:
    """The compute statement: hardware, time, energy, PUE, intensity and source, CO2e, ratio.
    Every amount in the unit that fits it (``14.7 mg CO2e``, ``35.6 t CO2e``)."""
    totals, region, pue = report["totals"], report["region"], report["pue"]
    co2 = "CO$_2$e" if latex else "CO2e"
    pct = "\\%" if latex else "%"

    def amount(metric: Metric, value: float) -> str:
        return escape(format_quantity(metric, value, long=True)).replace("CO2e", co2)

    span = report["span"]
    seconds = span.get("searching_s", (span["last_end"] or 0) - (span["first_start"] or 0) if span["first_start"] else 0)
    searches = len(report["sweeps"])
    refused = totals.get("trials_refused_by_budget", 0)
    trained = totals["trials"] - refused  # a trial a spent budget ended before it ran trained nothing
    runs = "training run" if trained == 1 else "training runs"
    if report["hardware"] or totals["gpu_hours"]:
        hardware = ", ".join(f"{escape(model)}" for model in report["hardware"]) or "GPUs whose model was not recorded"
        using = f"using {amount(Metric.GPU_HOURS, totals['gpu_hours'])} on {hardware}"
    else:
        using = "on CPUs only (no GPU was recorded)"
    text = (
        f"Developing this work took {trained:,} {runs} across {searches} "
        f"search{'es' if searches != 1 else ''} over {format_duration(seconds)} of search time, {using}"
        + (f" ({refused:,} more trials were refused by a spent budget before they ran)" if refused else "") + ". "
        f"They drew {amount(Metric.ENERGY_KWH, totals['energy_kwh'])} at the devices and "
        f"{amount(Metric.ENERGY_KWH, totals['facility_kwh'])} at the facility (PUE {pue['value']:.3g}, {escape(pue['source'])}). "
    )
    if mixed_grids(report):
        grids = "; ".join(sorted({escape(grid_of(s)) for s in report["sweeps"]}))
        text += (f"With the grid and PUE each search ran on ({grids}; energy-weighted mean "
                 f"{region['g_co2e_per_kwh']:.4g} g{co2}/kWh), this is {amount(Metric.CO2E_KG, totals['co2e_kg'])}")
    else:
        text += (f"At {region['g_co2e_per_kwh']:g} g{co2}/kWh ({escape(region['name'])}; {escape(region['source'])}), "
                 f"this is {amount(Metric.CO2E_KG, totals['co2e_kg'])}")
    if totals["cost_usd"] is not None:
        text += f" and cost {amount(Metric.COST_USD, totals['cost_usd'])}"
    text += "."
    text += statement_sentence(report, escape, co2)  # embodied carbon and water, when set
    for sentence in budget_sentences(report, escape):  # in words a paper prints: no "<1%"
        text += " " + sentence.replace("CO2e", co2).replace("<", "under ").replace(">", "over ").replace("%", pct)
    if report["final_run"] and report["search_to_final_ratio"] is not None:
        which = ("The final training run" if report["final_run"]["kind"] == "marked final"
                 else "The search's best trial (no final run was marked)")
        text += (f" {which} alone accounted for {amount(Metric.CO2E_KG, report['final_run']['co2e_kg'])}: "
                 + search_cost_phrase(report["search_to_final_ratio"],
                                      "the final run" if report["final_run"]["kind"] == "marked final" else "that trial")
                 .replace("%", pct) + ".")
    if totals["measured_fraction"] is not None:
        text += f" {format_share(totals['measured_fraction']).replace('%', pct)} of the energy was measured with hardware counters; the rest was estimated."
    if totals.get("trials_without_energy"):
        text += (f" {totals['trials_without_energy']} of the {totals['trials']} runs "
                 f"{'has' if totals['trials_without_energy'] == 1 else 'have'} no energy figure and count as zero, "
                 "so these figures are a lower bound.")
    if totals.get("co2e_market_kg") is not None:
        text += (f" That is location-based; market-based (with the market factor given for the searches), "
                 f"{amount(Metric.CO2E_KG, totals['co2e_market_kg'])}.")
    text += f" Figures recorded with {escape(report['generator'])}."
    return text
