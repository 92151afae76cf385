"""Cost as an Optuna constraint: a trial whose measured cost is over a limit is infeasible.

Optuna (>= 5) calls a trial feasible when all its constraint values are 0 or less, and its
constraint-aware samplers (TPE, NSGA-II, GP) prefer feasible configurations;
``study.best_trial`` of a constrained study is the best feasible one. The auditor's constraint,
keyed ``auditor``, is the trial's measured cost minus the limit, in the limit's unit: the same
figure the ledger records (IT energy for kWh, CO2e with the sweep's region and PUE, GPU-hours,
dollars at the sweep's price).

Example:
    >>> from auditor.model.carbon import Footprint
    >>> limit = CostConstraint.parse("20 Wh")
    >>> limit.value(Footprint(gpu_hours=0.1, energy_kwh=0.025, facility_kwh=0.03, co2e_kg=0.01, cost_usd=None))
    0.005000000000000001
    >>> limit.describe()
    '20 Wh of IT energy a trial'
"""

from __future__ import annotations

from dataclasses import dataclass

from auditor.errors import InvalidInputError
from auditor.model.carbon import CarbonModel, Footprint
from auditor.model.units import Metric, Quantity, format_amount, parse_quantity

CONSTRAINT_KEY = "auditor"  # Optuna's trial.constraints["auditor"]


@dataclass(frozen=True)
class CostConstraint:
    """The most a trial may cost and still count as feasible."""

    limit: Quantity

    @classmethod
    def parse(cls, text: str | CostConstraint, model: CarbonModel | None = None) -> CostConstraint:
        """A constraint from an amount in any budget unit (``"0.02 kWh"``, ``"5 g"``,
        ``"0.5 GPUh"``, ``"$0.10"``); a dollar limit needs a price in ``model``.

        Raises:
            InvalidInputError: the amount cannot be read, is not above zero, or is in dollars
                without a price.
        """
        if isinstance(text, CostConstraint):
            return text
        limit = parse_quantity(text)
        if limit.value <= 0:
            raise InvalidInputError(f"constraint {text!r} must be more than zero")
        if limit.metric is Metric.COST_USD and model is not None and not model.price.is_set:
            raise InvalidInputError(
                f"constraint {text!r} is in dollars but no price is set: pass price_per_gpu_hour= or price_per_kwh="
            )
        return cls(limit)

    def value(self, footprint: Footprint) -> float:
        """The trial's constraint value: its cost minus the limit (> 0: infeasible)."""
        return footprint.amount(self.limit.metric) - self.limit.value

    def describe(self) -> str:
        """The limit in words."""
        what = " of IT energy" if self.limit.metric is Metric.ENERGY_KWH else ""
        return f"{format_amount(self.limit.metric, self.limit.value)}{what} a trial"
