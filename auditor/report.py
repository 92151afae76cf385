"""The audit report: what the ledger's sweeps cost, measured and estimated, beside the final run.

This first version aggregates in Python from the ledger's rows; it serves ``audit report`` and
``audit demo``. Carbon and cost are computed here from stored energy, with the region and PUE
given to the report, so corrected settings correct every figure.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from auditor.carbon import CarbonModel, Footprint
from auditor.ledger import Ledger, TrialRecord
from auditor.ledger.records import MEASURED_METHODS

REPORT_VERSION = 1
WASTE_STATES = ("pruned", "failed", "stopped", "interrupted")
FLIGHT_NY_SF_KG = 1984 / 2.20462262185  # one passenger, Strubell et al. 2019, Table 1


@dataclass
class Totals:
    """Figures of a set of trials."""

    trials: int = 0
    gpu_seconds: float = 0.0
    joules: float = 0.0
    measured_joules: float = 0.0
    waste_joules: float = 0.0
    by_state: Counter[str] = field(default_factory=Counter)

    def add(self, trial: TrialRecord) -> None:
        self.trials += 1
        self.gpu_seconds += trial.gpu_seconds
        self.joules += trial.energy_joules
        self.measured_joules += sum(r.joules for r in trial.energy.values() if r.method in MEASURED_METHODS)
        if trial.state.value in WASTE_STATES:
            self.waste_joules += trial.energy_joules
        self.by_state[trial.state.value] += 1

    def footprint(self, model: CarbonModel) -> Footprint:
        return model.footprint(self.joules / 3.6e6, self.gpu_seconds / 3600)

    def to_dict(self, model: CarbonModel) -> dict[str, Any]:
        fp = self.footprint(model)
        return {
            "trials": self.trials,
            "trials_by_state": dict(self.by_state),
            "gpu_hours": fp.gpu_hours,
            "energy_kwh": fp.energy_kwh,
            "facility_kwh": fp.facility_kwh,
            "co2e_kg": fp.co2e_kg,
            "cost_usd": fp.cost_usd,
            "measured_fraction": self.measured_joules / self.joules if self.joules else None,
            "waste_fraction": self.waste_joules / self.joules if self.joules else None,
        }


@dataclass
class SweepSummary:
    name: str
    framework: str
    totals: Totals
    stopped_by_budget: bool
    budget_events: list[dict[str, Any]]


def build_report(ledger: Ledger, model: CarbonModel, sweeps: list[str] | None = None) -> dict[str, Any]:
    """The report as a JSON-ready dict (``totals``, ``sweeps``, ``final_run``, ``search_to_final_ratio``)."""
    names = sweeps or [s.name for s in ledger.sweeps()]
    frameworks = {s.name: s.framework for s in ledger.sweeps()}
    whole, summaries, finals = Totals(), [], []
    for name in names:
        totals = Totals()
        for trial in ledger.trials(name):
            totals.add(trial)
            whole.add(trial)
            if trial.is_final:
                finals.append(trial)
        events = ledger.budget_events(name)
        summaries.append(
            SweepSummary(
                name, frameworks.get(name, "?"), totals,
                any(e.action in ("stop-new", "stop-all") for e in events),
                [{"action": e.action, "budget": e.budget, "spent": e.spent, "limit": e.limit_value,
                  "metric": e.metric, "overshoot": e.overshoot, "at": e.at, "reason": e.reason} for e in events],
            )
        )
    final = finals[-1] if finals else None
    final_fp = model.footprint(final.energy_kwh, final.gpu_hours) if final else None
    development = whole.footprint(model)
    ratio = None
    if final_fp is not None and final_fp.co2e_kg > 0:
        ratio = (development.co2e_kg - final_fp.co2e_kg) / final_fp.co2e_kg
    region = model.region
    return {
        "version": REPORT_VERSION,
        "ledger": ledger.location,
        "region": {"code": region.code, "name": region.name, "g_co2e_per_kwh": region.g_co2e_per_kwh,
                   "source": region.describe_source(), "is_fallback": region.is_fallback},
        "pue": {"value": model.effective_pue, "source": model.pue_source},
        "totals": whole.to_dict(model),
        "sweeps": [
            {"name": s.name, "framework": s.framework, **s.totals.to_dict(model),
             "stopped_by_budget": s.stopped_by_budget, "budget_events": s.budget_events}
            for s in summaries
        ],
        "final_run": None if final is None else {
            "sweep": final.sweep, "name": final.name or final.trial_key,
            "co2e_kg": final_fp.co2e_kg, "energy_kwh": final_fp.energy_kwh, "gpu_hours": final_fp.gpu_hours,  # type: ignore[union-attr]
        },
        "search_to_final_ratio": ratio,
        "equivalents": {"flights_ny_sf": development.co2e_kg / FLIGHT_NY_SF_KG,
                        "flights_source": "one passenger New York - San Francisco, 1,984 lb CO2e (Strubell et al. 2019)"},
    }
