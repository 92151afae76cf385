"""Budgets: a limit on CO2e, energy, GPU-hours or money, and the decision to go on or stop.

A budget has a limit (``"5 kg"``, ``"1.2 t"``, ``"300 kWh"``, ``"100 GPUh"``, ``"$250"``), a scope
(``sweep``: this search; ``project``: the whole ledger) and a mode:

- ``warn``: warns at 50, 80 and 100 %; stops nothing.
- ``stop-new`` (default): no new trial once the spent amount, or the spent amount plus the
  forecast cost of the next trial (and what running trials elsewhere hold, still to draw),
  reaches the limit; running trials finish. Spent is what was drawn: a reservation only holds
  new trials back while it stands.
- ``hard``: as ``stop-new``, and running trials are stopped too once the spent amount itself
  reaches the limit.

When the budget cannot be checked (the ledger does not answer) or a trial's energy could be
neither measured nor estimated, the budget *fails open* by default (``fail="open"``: the
search goes on, with a warning); ``fail="closed"`` stops it instead, as ``stop-new`` would.

The budget is framework-free: the plugins tell it what is spent and what the next trial is
forecast to cost, and act on the :class:`Decision`.

Example:
    >>> from auditor.model.carbon import Footprint
    >>> budget = Budget.parse("2 kWh")
    >>> spent = Footprint(gpu_hours=1, energy_kwh=1.5, facility_kwh=2.4, co2e_kg=1, cost_usd=None)
    >>> nxt = Footprint(gpu_hours=0.2, energy_kwh=0.6, facility_kwh=0.9, co2e_kg=0.3, cost_usd=None)
    >>> decision = budget.check(spent, forecast=nxt)
    >>> decision.action.value, decision.reason
    ('stop-new', 'next trial forecast 600 Wh would bring the spend to 2.1 kWh, past the 2 kWh budget')
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from auditor.errors import InvalidInputError
from auditor.model.carbon import Footprint, Price
from auditor.model.units import Metric, Quantity, format_amount, parse_quantity

WARN_THRESHOLDS = (0.5, 0.8, 1.0)


class Scope(str, Enum):
    """What a budget counts: this sweep's trials, or every trial in the ledger."""

    SWEEP = "sweep"
    PROJECT = "project"


class Mode(str, Enum):
    """What a budget does once reached."""

    WARN = "warn"
    STOP_NEW = "stop-new"
    HARD = "hard"


class FailMode(str, Enum):
    """What a budget does when it cannot be checked: let the search go on, or stop it."""

    OPEN = "open"
    CLOSED = "closed"


class Action(str, Enum):
    """What the search should do now."""

    GO = "go"
    WARN = "warn"
    STOP_NEW = "stop-new"  # start no new trial; let running ones finish
    STOP_ALL = "stop-all"  # also stop running trials at their next report

    @property
    def stops(self) -> bool:
        """True when the search should start no new trial."""
        return self in (Action.STOP_NEW, Action.STOP_ALL)


_E = TypeVar("_E", bound=Enum)


def _enum_value(enum: type[_E], value: object, what: str) -> _E:
    try:
        return enum(value.value if isinstance(value, Enum) else str(value).strip().lower())
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise InvalidInputError(f"unknown budget {what} {value!r}: use one of {choices}") from None


@dataclass(frozen=True)
class Decision:
    """The answer of :meth:`Budget.check`.

    Attributes:
        action: go, warn, stop-new or stop-all.
        spent: the amount spent, in the budget's unit.
        limit: the budget's limit, in the same unit.
        forecast: the forecast cost of the next trial, if one was given.
        threshold: the highest warning level reached (0.5, 0.8 or 1.0), or None below 50 %.
        reason: one sentence explaining the action.
    """

    action: Action
    spent: float
    limit: float
    forecast: float | None
    threshold: float | None
    reason: str

    @property
    def fraction(self) -> float:
        """Spent amount over the limit (may exceed 1)."""
        return self.spent / self.limit if self.limit > 0 else float("inf")

    @property
    def overshoot(self) -> float:
        """How far the spent amount is past the limit (0 when within it)."""
        return max(0.0, self.spent - self.limit)


@dataclass(frozen=True)
class Budget:
    """A limit with a scope and a mode. Build one with :meth:`parse`.

    Example:
        >>> Budget.parse("$250", scope="project", mode="hard").describe()
        '$250.00 per project (hard)'
    """

    limit: Quantity
    scope: Scope = Scope.SWEEP
    mode: Mode = Mode.STOP_NEW
    text: str = ""
    fail: FailMode = FailMode.OPEN

    @classmethod
    def parse(
        cls,
        text: str | Budget,
        scope: str | Scope = Scope.SWEEP,
        mode: str | Mode = Mode.STOP_NEW,
        fail: str | FailMode = FailMode.OPEN,
    ) -> Budget:
        """A budget from a string such as ``"5 kg"``; a :class:`Budget` is returned as it is.

        Raises:
            InvalidInputError: the amount, scope, mode or fail mode cannot be read.
        """
        if isinstance(text, Budget):
            return text
        limit = parse_quantity(text)
        if limit.value <= 0:
            raise InvalidInputError(f"budget {text!r} must be more than zero")
        return cls(limit, _enum_value(Scope, scope, "scope"), _enum_value(Mode, mode, "mode"), text.strip(),
                   _enum_value(FailMode, fail, "fail mode"))

    @property
    def stop_action(self) -> Action:
        """What stopping means for this budget's mode."""
        return Action.STOP_ALL if self.mode is Mode.HARD else Action.STOP_NEW

    @property
    def counts(self) -> str:
        """What the limit is compared with, in words (an energy budget counts IT energy).

        Example:
            >>> Budget.parse("2 kWh").counts
            'IT energy at the devices (before PUE)'
        """
        return {
            Metric.ENERGY_KWH: "IT energy at the devices (before PUE)",
            Metric.CO2E_KG: "CO2e of the facility energy (IT energy x PUE x intensity)",
            Metric.GPU_HOURS: "GPU-hours (devices x wall hours)",
            Metric.COST_USD: "cost at the given price",
        }[self.limit.metric]

    def cannot_act(self, price: Price, gpus_in_reach: bool) -> str | None:
        """Why this budget can never stop anything where no GPU is in reach (a GPU-hour budget,
        or a dollar budget priced per GPU-hour, counts only GPU time), or None. Said at the
        start of a search, not found at its end.

        Example:
            >>> Budget.parse("10 GPUh").cannot_act(Price(), gpus_in_reach=False)[:47]
            'the 10 GPUh budget counts GPU-hours, and no GPU'
            >>> Budget.parse("10 kWh").cannot_act(Price(), gpus_in_reach=False) is None
            True
        """
        if gpus_in_reach:
            return None
        metric = self.limit.metric
        if metric is Metric.GPU_HOURS:
            counted = "GPU-hours"
        elif metric is Metric.COST_USD and price.per_gpu_hour is not None:
            counted = "cost per GPU-hour"
        else:
            return None
        return (f"the {self.text or self.limit.describe()} budget counts {counted}, and no GPU is in reach here: every trial is "
                "charged 0 GPU-hours and the budget never acts. Give a kWh or kg CO2e budget (or a price per kWh) "
                "for a search on CPUs")

    def describe(self) -> str:
        """The budget in words, e.g. ``'2 kg CO2e per sweep (stop-new)'``; an energy budget says
        it counts IT energy (``'2 kWh IT per sweep (stop-new)'``)."""
        qualifier = " IT" if self.limit.metric is Metric.ENERGY_KWH else ""
        return f"{self.limit.describe()}{qualifier} per {self.scope.value} ({self.mode.value})"

    def _fmt(self, value: float) -> str:
        return format_amount(self.limit.metric, value)

    def check(self, spent: Footprint, forecast: Footprint | None = None, held: Footprint | None = None) -> Decision:
        """Decide whether the search may go on, given what is spent (drawn), the next trial's
        forecast and what running trials ``held`` beyond what they drew so far (reservations):
        ``held`` holds a new trial back, it is never counted as spent.

        Raises:
            InvalidInputError: a budget in USD without a price in the footprints.
        """
        metric, limit = self.limit.metric, self.limit.value
        used = spent.amount(metric)
        reserved = held.amount(metric) if held is not None else 0.0
        ahead = forecast.amount(metric) if forecast is not None else None
        reached = [level for level in WARN_THRESHOLDS if used >= level * limit]
        threshold = reached[-1] if reached else None

        def decide(action: Action, reason: str) -> Decision:
            return Decision(action, used, limit, ahead, threshold, reason)

        it = " (IT energy, before PUE)" if metric is Metric.ENERGY_KWH else ""
        spent_text = f"spent {self._fmt(used)} of the {self._fmt(limit)} budget{it}"
        if self.mode is Mode.WARN:
            if threshold is None:
                return decide(Action.GO, spent_text)
            return decide(Action.WARN, f"{spent_text} ({used / limit:.0%}); mode warn stops nothing")
        if used >= limit:
            action = Action.STOP_ALL if self.mode is Mode.HARD else Action.STOP_NEW
            return decide(action, f"budget reached: {spent_text}")
        if ahead is not None and used + reserved + ahead >= limit:
            running = f" (with {self._fmt(reserved)} held for running trials)" if reserved > 0 else ""
            return decide(
                Action.STOP_NEW,
                f"next trial forecast {self._fmt(ahead)} would bring the spend to "
                f"{self._fmt(used + reserved + ahead)}{running}, past the {self._fmt(limit)} budget",
            )
        if threshold is not None:
            return decide(Action.WARN, f"{spent_text} ({used / limit:.0%})")
        return decide(Action.GO, spent_text)
