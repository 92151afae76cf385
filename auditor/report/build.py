"""The audit report: what the ledger's sweeps cost, measured and estimated, beside the final run.

The figures are summed by the database (per sweep and state), so a report over a million
trials reads no trial row into Python. Carbon and cost are computed here from the stored energy
and GPU time with the region and PUE given to the report: corrected settings correct every
figure. The JSON form (``audit report --format json``) is versioned: ``REPORT_VERSION``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from auditor import __version__
from auditor.ledger import Ledger
from auditor.ledger.records import StateAggregate
from auditor.model.carbon import CarbonModel

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
        if row.state in WASTE_STATES:
            self.waste_joules += row.joules
        self.by_state[row.state] += row.trials

    def to_dict(self, model: CarbonModel) -> dict[str, Any]:
        fp = model.footprint(self.joules / 3.6e6, self.gpu_seconds / 3600)
        return {
            "trials": self.trials,
            "trials_by_state": dict(sorted(self.by_state.items())),
            "gpu_hours": fp.gpu_hours,
            "energy_kwh": fp.energy_kwh,
            "facility_kwh": fp.facility_kwh,
            "co2e_kg": fp.co2e_kg,
            "cost_usd": fp.cost_usd,
            "measured_fraction": self.measured_joules / self.joules if self.joules else None,
            "waste_fraction": self.waste_joules / self.joules if self.joules else None,
            "idle_kwh": self.idle_joules / 3.6e6,
            "idle_fraction": self.idle_joules / self.joules if self.joules else None,
        }


def _hardware(device_lists: dict[str, int]) -> dict[str, int]:
    """Device models and how many trials held each."""
    models: Counter[str] = Counter()
    for text, count in device_lists.items():
        for device in json.loads(text or "[]"):
            models[str(device.get("model", "unknown GPU"))] += count
    return dict(models.most_common())


def build_report(
    ledger: Ledger, model: CarbonModel, sweeps: list[str] | None = None, since: float | None = None
) -> dict[str, Any]:
    """The report as a JSON-ready dict: ``version``, ``region``, ``pue``, ``totals``, ``sweeps``,
    ``final_run``, ``search_to_final_ratio``, ``equivalents``, ``hardware``, ``span``."""
    wanted = set(sweeps) if sweeps else None
    per_sweep: dict[str, Totals] = defaultdict(Totals)
    frameworks: dict[str, str] = {s.name: s.framework for s in ledger.sweeps()}
    whole = Totals()
    aggregates = ledger.aggregate(since)
    for row in aggregates:
        if wanted is None or row.sweep in wanted:
            per_sweep[row.sweep].add(row)
            whole.add(row)
    names = [name for name in frameworks if (wanted is None or name in wanted)]
    events = defaultdict(list)
    for event in ledger.budget_events():
        if event.sweep is not None:
            events[event.sweep].append(
                {"action": event.action, "budget": event.budget, "scope": event.scope, "metric": event.metric, "spent": event.spent,
                 "limit": event.limit_value, "overshoot": event.overshoot, "at": event.at, "reason": event.reason}
            )
    finals = [t for t in ledger.final_trials() if wanted is None or t.sweep in wanted]
    final = finals[-1] if finals else None
    final_kind = "marked final" if final else None
    if final is None and len(names) == 1:  # one search, no final run marked: its best trial
        attrs = next((s.attrs for s in ledger.sweeps() if s.name == names[0]), {})
        maximize = (attrs.get("directions") or ["minimize"])[0] == "maximize"
        final = ledger.best_trial(names[0], maximize=maximize)
        final_kind = "best trial" if final else None
    final_fp = model.footprint(final.energy_kwh, final.gpu_hours) if final else None
    development = whole.to_dict(model)
    ratio = None
    if final_fp is not None and final_fp.co2e_kg > 0:
        ratio = (development["co2e_kg"] - final_fp.co2e_kg) / final_fp.co2e_kg
    rows = [row for row in aggregates if wanted is None or row.sweep in wanted]
    starts = [row.first_start for row in rows if row.first_start is not None]
    ends = [row.last_end for row in rows if row.last_end is not None]
    first, last = (min(starts), max(ends)) if starts and ends else (None, None)
    device_lists = ledger.device_lists(since)
    region = model.region
    return {
        "version": REPORT_VERSION,
        "generator": f"hpo-auditor {__version__}",
        "ledger": ledger.location,
        "region": {"code": region.code, "name": region.name, "g_co2e_per_kwh": region.g_co2e_per_kwh,
                   "source": region.describe_source(), "is_fallback": region.is_fallback},
        "pue": {"value": model.effective_pue, "source": model.pue_source},
        "price": model.price.describe(),
        "totals": development,
        "sweeps": [
            {"name": name, "framework": frameworks[name], **per_sweep[name].to_dict(model),
             "stopped_by_budget": any(e["action"] in ("stop-new", "stop-all") for e in events[name]),
             "trials_stopped_by_budget": per_sweep[name].stopped_by_budget,
             "budget_events": events[name]}
            for name in names
        ],
        "final_run": None if final is None or final_fp is None else {
            "sweep": final.sweep, "name": final.name or final.trial_key, "kind": final_kind, "co2e_kg": final_fp.co2e_kg,
            "energy_kwh": final_fp.energy_kwh, "facility_kwh": final_fp.facility_kwh, "gpu_hours": final_fp.gpu_hours,
        },
        "search_to_final_ratio": ratio,
        "equivalents": {"flights_ny_sf": development["co2e_kg"] / FLIGHT_NY_SF_KG, "flights_source": FLIGHT_SOURCE},
        "hardware": _hardware(device_lists),
        "span": {"first_start": first, "last_end": last},
    }
