"""What the report says about where each sweep is heading and what drives its cost: the
forecast of a running or planned sweep (:mod:`auditor.report.forecast`) and the parameters that
explain its trials' energy (:mod:`auditor.report.importance`), as JSON keys of each sweep
(``forecast``, ``energy_drivers``) and as sentences every human format prints from them.

Example:
    >>> sweep = {"name": "lr", "forecast": {"trials_seen": 12, "text": "at this rate 200 trials cost 3.1 kg CO2e"},
    ...          "energy_drivers": {"trials": 40, "parameters": [{"name": "width", "share": 0.71},
    ...                                                          {"name": "lr", "share": 0.03}]}}
    >>> outlook_sentences({"sweeps": [sweep]})
    ['lr: forecast from its 12 finished trials: at this rate 200 trials cost 3.1 kg CO2e.', 'lr: width explains 71% of the variation in trial energy, lr 3% (each parameter alone, 40 trials).']
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from auditor.ledger import Ledger, schema, stored_json
from auditor.ledger.records import SweepRecord
from auditor.model.carbon import CarbonModel, Footprint
from auditor.model.units import JOULES_PER_KWH, format_share
from auditor.report.forecast import sweep_forecast
from auditor.report.importance import METHOD, MIN_TRIALS, energy_drivers

DRIVER_SAMPLE = 1_000  # the ranking reads each trial's params: at most this many finished trials of a sweep
DRIVER_SWEEPS = 20  # and only for the newest this many sweeps, so that a report over a large ledger stays fast
SHOWN_PARAMETERS = 4


def _params_and_energy(ledger: Ledger, sweep: str, limit: int) -> list[tuple[dict[str, Any], float]]:
    """The params and IT kWh of ``limit`` finished trials of the sweep (the first the database
    finds): two columns, so that a report over a large ledger reads no more than it needs."""
    t = schema.trials
    query = (select(t.c.params, t.c.energy_j)
             .where(t.c.sweep_id == ledger._sweep_id(sweep), t.c.state.notin_(["running", "idle"]), ledger._counted,
                    t.c.flags.notlike('%"refused-by-budget"%'))  # never ran: no params to explain anything
             .limit(limit))
    with ledger._read() as conn:
        rows = conn.execute(query).all()
    return [(params if isinstance(params, dict) else stored_json(params, dict, f"a trial of sweep {sweep!r:.80}"),
             float(joules or 0.0) / JOULES_PER_KWH) for params, joules in rows]


def drivers_of(ledger: Ledger, sweep: str, trials: int) -> dict[str, Any] | None:
    """The sweep's parameters ranked by the share of its trials' energy variation each
    explains (JSON-ready; from at most :data:`DRIVER_SAMPLE` finished trials), or None with
    too few trials or no parameters."""
    if trials < MIN_TRIALS:
        return None
    rows = _params_and_energy(ledger, sweep, DRIVER_SAMPLE)
    ranked = energy_drivers(rows)
    if not ranked:
        return None
    return {"method": METHOD, "trials": sum(1 for _, e in rows if e > 0),
            "parameters": [{"name": name, "share": share} for name, share in ranked]}


def add_outlook(report: dict[str, Any], ledger: Ledger, records: dict[str, SweepRecord],
                models: dict[str, tuple[CarbonModel, str]], totals: dict[str, Any], footprints: dict[str, Footprint],
                whole: Footprint) -> None:
    """Add ``forecast`` and ``energy_drivers`` to each sweep of ``report`` (built by
    :func:`~auditor.report.build.build_report` from the same ``records``, ``models``, per-sweep
    ``totals`` and ``footprints``; ``whole``: the project's footprint, what a project budget counts)."""
    newest = {entry["name"] for entry in report["sweeps"][-DRIVER_SWEEPS:]}
    for entry in report["sweeps"]:
        name = entry["name"]
        sums = totals[name]
        budget = records[name].attrs.get("budget")
        spent = whole if isinstance(budget, dict) and budget.get("scope") == "project" else footprints[name]
        running = sums.by_state.get("running", 0) > 0
        projection = None
        stopped = entry.get("stopped_by_budget") or any(  # (a window may hold none of its events)
            e.action in ("stop-new", "stop-all") for e in ledger.budget_events(name))
        if running or not stopped:  # a forecast is for a sweep still going
            # its trials of all time: a report --since a later hour must not take it for a new sweep
            projection = sweep_forecast(ledger, records[name], models[name][0], done=ledger.count_trials(name),
                                        running=running, idle_kwh=sums.idle_joules / JOULES_PER_KWH, spent=spent)
        entry["forecast"] = projection.to_dict() if projection is not None else None
        entry["energy_drivers"] = drivers_of(ledger, name, sums.trials) if name in newest else None


def outlook_sentences(report: dict[str, Any], escape: Any = str) -> list[str]:
    """Each sweep's forecast and energy drivers as sentences, from the report's JSON keys."""
    sentences = []
    for sweep in report["sweeps"]:
        forecast = sweep.get("forecast")
        if forecast:
            sentences.append(f"{escape(sweep['name'])}: forecast from its {forecast['trials_seen']:,} finished trials: "
                             f"{forecast['text']}.")
        drivers = sweep.get("energy_drivers")
        if drivers:
            shown = drivers["parameters"][:SHOWN_PARAMETERS]
            first, rest = shown[0], shown[1:]
            text = f"{escape(sweep['name'])}: {escape(first['name'])} explains {format_share(first['share'])} of the variation in trial energy"
            text += "".join(f", {escape(p['name'])} {format_share(p['share'])}" for p in rest)
            sentences.append(text + f" (each parameter alone, {drivers['trials']:,} trials).")
    return sentences
