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

from auditor.ledger import Ledger
from auditor.ledger.records import SweepRecord
from auditor.model.carbon import CarbonModel, Footprint
from auditor.model.units import format_share
from auditor.report.forecast import sweep_forecast
from auditor.report.importance import METHOD, MIN_TRIALS, energy_drivers

MAX_DRIVER_TRIALS = 50_000  # the ranking reads each trial's params: larger sweeps are left out of the report
SHOWN_PARAMETERS = 4


def drivers_of(ledger: Ledger, sweep: str, trials: int) -> dict[str, Any] | None:
    """The sweep's parameters ranked by the share of its trials' energy variation each
    explains (JSON-ready), or None with too few (or too many) trials or no parameters."""
    if trials < MIN_TRIALS or trials > MAX_DRIVER_TRIALS:
        return None
    rows = [(t.params, t.energy_kwh) for t in ledger.trials(sweep) if t.state.value not in ("running", "idle")]
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
    for entry in report["sweeps"]:
        name = entry["name"]
        sums = totals[name]
        budget = records[name].attrs.get("budget")
        spent = whole if isinstance(budget, dict) and budget.get("scope") == "project" else footprints[name]
        projection = sweep_forecast(ledger, records[name], models[name][0], done=sums.trials,
                                    running=sums.by_state.get("running", 0) > 0, idle_kwh=sums.idle_joules / 3.6e6,
                                    spent=spent)
        entry["forecast"] = projection.to_dict() if projection is not None else None
        entry["energy_drivers"] = drivers_of(ledger, name, sums.trials)


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
