"""The audit report: what the ledger's sweeps cost, measured and estimated, beside the final run.

The figures are summed by the database (per sweep and state), so a report over a million
trials reads no trial row into Python. Carbon and cost are computed here from the stored energy
and GPU time, each sweep with the grid, PUE and price it was run with (recorded with the sweep,
what its budget and its trials' figures used), unless the report is told to use others: then
corrected settings correct every figure. Sweeps recorded before settings were kept with them
use the report's. The JSON form (``audit report --format json``) is versioned:
``REPORT_VERSION``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from auditor import __version__
from auditor.ledger import Ledger, stored_json
from auditor.ledger.records import StateAggregate, SweepRecord, TrialRecord, fit_name
from auditor.model.carbon import CarbonModel, Footprint, Overrides, model_for_sweep
from auditor.model.text import shown_name
from auditor.model.units import JOULES_PER_KWH
from auditor.report.embodied import EmbodiedSettings, add_embodied_and_water
from auditor.report.grid import (
    grid_description,
    hourly_footprints,
    hourly_region,
    market_total,
    shifts,
)
from auditor.report.outlook import add_outlook

REPORT_VERSION = 1
WASTE_STATES = ("pruned", "failed", "stopped", "interrupted")
FLIGHT_NY_SF_KG = 1984 / 2.20462262185  # one passenger, Strubell et al. 2019, Table 1
FLIGHT_SOURCE = "one passenger New York - San Francisco, 1,984 lb CO2e (Strubell et al. 2019, Table 1)"


@dataclass
class Totals:
    """Summed figures of a set of trials."""

    trials: int = 0
    gpu_seconds: float = 0.0
    joules: float = 0.0
    measured_joules: float = 0.0
    waste_joules: float = 0.0
    idle_joules: float = 0.0
    stopped_by_budget: int = 0
    without_energy: int = 0
    refused: int = 0
    by_state: Counter[str] = field(default_factory=Counter)

    def add(self, row: StateAggregate) -> None:
        if row.state == "idle":  # energy between trials: part of the search's cost, not a trial
            self.joules += row.joules
            self.measured_joules += row.measured_joules
            self.idle_joules += row.joules
            return
        self.trials += row.trials
        self.gpu_seconds += row.gpu_seconds
        self.joules += row.joules
        self.measured_joules += row.measured_joules
        self.stopped_by_budget += row.stopped_by_budget
        self.without_energy += row.without_energy
        self.refused += row.refused
        if row.state in WASTE_STATES:
            self.waste_joules += row.joules
        self.by_state[row.state] += row.trials

    def footprint(self, model: CarbonModel) -> Footprint:
        """The footprint of these trials under ``model``."""
        return model.footprint(self.joules / JOULES_PER_KWH, self.gpu_seconds / 3600)

    def to_dict(self, fp: Footprint) -> dict[str, Any]:
        return {
            "trials": self.trials,
            "trials_by_state": dict(sorted(self.by_state.items())),
            "gpu_hours": fp.gpu_hours,
            "energy_kwh": fp.energy_kwh,
            "facility_kwh": fp.facility_kwh,
            "co2e_kg": fp.co2e_kg,
            "co2e_market_kg": fp.co2e_market_kg,
            "cost_usd": fp.cost_usd,
            "measured_fraction": self.measured_joules / self.joules if self.joules else None,
            "waste_fraction": self.waste_joules / self.joules if self.joules else None,
            "idle_kwh": self.idle_joules / JOULES_PER_KWH,
            "idle_fraction": self.idle_joules / self.joules if self.joules else None,
            "trials_without_energy": self.without_energy,
            "trials_refused_by_budget": self.refused,
        }


def searching_seconds(spans: list[tuple[float, float]]) -> float:
    """How long some run was going: the union of the runs' spans (a week between two runs of a
    search is no search time).

    Example:
        >>> searching_seconds([(0.0, 60.0), (30.0, 90.0), (3600.0, 3630.0)])
        120.0
    """
    total, reach = 0.0, -float("inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def trial_label(trial: TrialRecord, runs: list[str | None]) -> str:
    """How a report names a trial: ``sweep/number``, and which run when its sweep has several;
    the sweep's name shown as tables show it (an empty one as ``""``, a line break escaped).

    Example:
        >>> trial = TrialRecord(sweep="lr", trial_key="lr/ab12cd34/4", state="complete", start_time=0.0,
        ...                     number=4, run="ab12cd34")
        >>> trial_label(trial, ["ab12cd34"]), trial_label(trial, ["0f0f0f0f", "ab12cd34"])
        ('lr/4', 'lr/4 (run 2 of 2)')
        >>> trial_label(TrialRecord(sweep="", trial_key="0", state="complete", start_time=0.0, number=0), [])
        '""/0'
    """
    if trial.number is None:
        return trial.trial_key
    label = f"{shown_name(trial.sweep)}/{trial.number}"
    if len(runs) > 1 and trial.run in runs:
        label += f" (run {runs.index(trial.run) + 1} of {len(runs)})"
    return label


def _hardware(device_lists: dict[str, int]) -> dict[str, int]:
    """Device models and how many trials held each."""
    models: Counter[str] = Counter()
    for text, count in device_lists.items():
        for device in stored_json(text, list, "a trial's GPUs"):
            model = device.get("model", "unknown GPU") if isinstance(device, dict) else "unknown GPU"
            models[str(model)] += count
    return dict(models.most_common())


def _describe(model: CarbonModel, origin: str) -> dict[str, Any]:
    region = model.region
    return {
        "region": {"code": region.code, "name": region.name, "g_co2e_per_kwh": region.g_co2e_per_kwh,
                   "source": region.describe_source(), "is_fallback": region.is_fallback},
        "pue": {"value": model.effective_pue, "source": model.pue_source},
        "price": model.price.describe() if model.price.is_set else None,  # JSON: null without a price
        "settings_from": origin,
        **grid_description(model),
    }


def _sum_footprints(footprints: list[Footprint], whole: Totals) -> Footprint:
    costs = [fp.cost_usd for fp in footprints]
    return Footprint(
        gpu_hours=whole.gpu_seconds / 3600,
        energy_kwh=whole.joules / JOULES_PER_KWH,
        facility_kwh=sum(fp.facility_kwh for fp in footprints),
        co2e_kg=sum(fp.co2e_kg for fp in footprints),
        co2e_market_kg=market_total(footprints),
        cost_usd=sum(c for c in costs if c is not None) if costs and all(c is not None for c in costs) else None,
    )


def _common_settings(described: list[dict[str, Any]], development: dict[str, Any]) -> dict[str, Any]:
    """The report's grid, PUE and price: the sweeps' own where they share one, else what they
    add up to, said as such."""
    def shared(key: str) -> bool:
        return bool(described) and all(d[key] == described[0][key] for d in described)

    facility, energy = development["facility_kwh"], development["energy_kwh"]
    return {
        "region": described[0]["region"] if shared("region") else {
            "code": "per-sweep", "name": "each sweep's own grid",
            "g_co2e_per_kwh": 1000 * development["co2e_kg"] / facility if facility else 0.0,
            "source": "each sweep's recorded grid (see sweeps); the figure is their energy-weighted mean",
            "is_fallback": all(d["region"]["is_fallback"] for d in described)},
        "pue": described[0]["pue"] if shared("pue") else {
            "value": facility / energy if energy else 0.0, "source": "each sweep's own (see sweeps); the figure is their mean"},
        "price": described[0]["price"] if shared("price") else "each sweep's own (see sweeps)",
    }


def build_report(
    ledger: Ledger, model: CarbonModel, sweeps: list[str] | None = None, since: float | None = None,
    overrides: Overrides | None = None, shift_s: float | None = None,
    embodied: EmbodiedSettings | None = None, wue_l_per_kwh: float | None = None,
) -> dict[str, Any]:
    """The report as a JSON-ready dict: ``version``, ``region``, ``pue``, ``totals``, ``sweeps``,
    ``final_run``, ``search_to_final_ratio``, ``equivalents``, ``hardware``, ``span``.

    Args:
        ledger: the ledger.
        model: the settings in force, for sweeps recorded without their own.
        sweeps: only these sweeps (all when None).
        since: only trials started at or after this time.
        overrides: settings the user gave for this report, in place of each sweep's.
        shift_s: with an intensity series, also say per sweep what starting it at the best time
            within this many seconds after it started would have emitted (``shift``).
        embodied: also charge embodied carbon on the GPU-hours (``embodied_co2e_kg``,
            ``total_co2e_kg``, ``embodied``); none when None.
        wue_l_per_kwh: also say the water used on site, IT kWh x this (``water_l``, ``water``).
    """
    overrides = overrides or Overrides()
    wanted = {fit_name(name) for name in sweeps} if sweeps else None  # a long name as the ledger holds it
    per_sweep: dict[str, Totals] = defaultdict(Totals)
    records: dict[str, SweepRecord] = {s.name: s for s in ledger.sweeps()}
    whole = Totals()
    ledger.verify_rows()  # a damaged row is named and left out of every figure below
    spans = ledger.run_spans(since)
    run_counts = Counter(sweep for sweep, _, _ in (spans if since is None else ledger.run_spans()))
    aggregates = ledger.aggregate(since)
    for row in aggregates:
        if wanted is None or row.sweep in wanted:
            per_sweep[row.sweep].add(row)
            whole.add(row)
    names = [name for name in records if (wanted is None or name in wanted)]
    models = {name: model_for_sweep(records[name].attrs, model, overrides) for name in names}
    footprints = hourly_footprints(ledger, names, models, per_sweep, since)
    events = defaultdict(list)
    for event in ledger.budget_events():
        if event.sweep is not None and (since is None or event.at >= since):  # the window's own stops
            events[event.sweep].append(
                {"action": event.action, "budget": event.budget, "scope": event.scope, "metric": event.metric, "spent": event.spent,
                 "limit": event.limit_value, "overshoot": event.overshoot, "at": event.at, "reason": event.reason,
                 "forecast": event.forecast, "mode": event.mode}
            )
    finals = [t for t in ledger.final_trials() if (wanted is None or t.sweep in wanted)
              and (since is None or t.start_time >= since)]
    final = finals[-1] if finals else None
    final_kind = "marked final" if final else None
    if final is None and len(names) == 1:  # one search, no final run marked: its best trial
        attrs = records[names[0]].attrs
        maximize = (attrs.get("directions") or ["minimize"])[0] == "maximize"
        final = ledger.best_trial(names[0], maximize=maximize)
        final = final if final is not None and (since is None or final.start_time >= since) else None
        final_kind = "best trial" if final else None
    final_model = model_for_sweep(records[final.sweep].attrs, model, overrides)[0] if final else model
    final_fp = final_model.footprint(final.energy_kwh, final.gpu_hours,
                                     (final.start_time, final.end_time or final.start_time)) if final else None
    development = whole.to_dict(_sum_footprints(list(footprints.values()), whole))
    ratio = None
    if final_fp is not None and final_fp.co2e_kg > 0 and development["co2e_kg"] >= final_fp.co2e_kg:
        ratio = (development["co2e_kg"] - final_fp.co2e_kg) / final_fp.co2e_kg
    rows = [row for row in aggregates if wanted is None or row.sweep in wanted]
    started: dict[str, float] = {}
    for row in rows:
        if row.first_start is not None:
            started[row.sweep] = min(started.get(row.sweep, row.first_start), row.first_start)
    starts = list(started.values())
    ends = [row.last_end for row in rows if row.last_end is not None]
    first, last = (min(starts), max(ends)) if starts and ends else (None, None)
    device_lists = ledger.device_lists(since)
    described = {name: _describe(*models[name]) for name in names}
    for name in names:
        hourly_region(described[name], models[name][0], footprints[name])
    shifted = shifts(ledger, names, models, shift_s, since) if shift_s is not None else {}
    common = _common_settings(list(described.values()), development) if names else _describe(
        *model_for_sweep(None, model, overrides))
    report = {
        "version": REPORT_VERSION,
        "generator": f"hpo-auditor {__version__}",
        "ledger": ledger.location,
        "region": common["region"],
        "pue": common["pue"],
        "price": common["price"],
        "totals": development,
        "sweeps": [
            {"name": name, "framework": records[name].framework, "started": started.get(name, records[name].created_at),
             **per_sweep[name].to_dict(footprints[name]),
             **described[name],
             "stopped_by_budget": any(e["action"] in ("stop-new", "stop-all") for e in events[name]),
             "trials_stopped_by_budget": per_sweep[name].stopped_by_budget,
             "budget_events": events[name],
             "shift": shifted.get(name),
             "budget": (records[name].attrs or {}).get("budget"),
             "imported": bool((records[name].attrs or {}).get("imported")),
             "runs": run_counts.get(name, 0) if per_sweep[name].trials else 0}
            for name in names
        ],
        "final_run": None if final is None or final_fp is None else {
            "sweep": final.sweep, "name": final.name or trial_label(final, ledger.runs(final.sweep)), "kind": final_kind, "co2e_kg": final_fp.co2e_kg,
            "energy_kwh": final_fp.energy_kwh, "facility_kwh": final_fp.facility_kwh, "gpu_hours": final_fp.gpu_hours,
        },
        "search_to_final_ratio": ratio,
        "equivalents": {"flights_ny_sf": development["co2e_kg"] / FLIGHT_NY_SF_KG, "flights_source": FLIGHT_SOURCE},
        "hardware": _hardware(device_lists),
        "span": {"first_start": first, "last_end": last, "searching_s": searching_seconds([(start, end) for _, start, end in spans])},
        "co2e_basis": "location-based",
        "shift_window_h": None if shift_s is None else shift_s / 3600,
    }
    whole_fp = Footprint(development["gpu_hours"], development["energy_kwh"], development["facility_kwh"],
                         development["co2e_kg"], development["cost_usd"])
    add_outlook(report, ledger, records, models, per_sweep, footprints, whole_fp)  # forecast, energy_drivers
    add_embodied_and_water(report, ledger, since, embodied, wue_l_per_kwh)  # only when set
    return report
