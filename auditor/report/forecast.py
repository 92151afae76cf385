"""Forecasts from the ledger: a running or planned sweep's projected cost (``audit report``) and
a new search's cost from a past sweep's trials (``audit plan``).

Both read the sweep's finished trials (their IT energy and GPU time) and its energy between
trials from the ledger, and hand them to :func:`auditor.model.forecast.project`, the same
computation the Optuna plugin logs while the search runs.

Example:
    >>> import tempfile, pathlib
    >>> from auditor.ledger import Ledger, TrialRecord
    >>> from auditor.meters.base import EnergyReading
    >>> from auditor.model.carbon import CarbonModel
    >>> with Ledger.open(pathlib.Path(tempfile.mkdtemp()) / "l.db") as ledger:
    ...     _ = ledger.ensure_sweep("past", "optuna")
    ...     for i in range(6):
    ...         _ = ledger.record_trial(TrialRecord(sweep="past", trial_key=str(i), state="complete", start_time=i,
    ...                                             end_time=i + 1, energy={"gpu": EnergyReading(36_000.0, "counter")}))
    ...     p = plan(ledger, "past", CarbonModel(), trials=100, budget=(Metric.ENERGY_KWH, 0.5))
    >>> round(p.total.energy_kwh, 6), p.lasts_to
    (1.0, 50)
"""

from __future__ import annotations

from typing import Any

from auditor.errors import InvalidInputError
from auditor.ledger import Ledger
from auditor.ledger.records import SweepRecord
from auditor.model.carbon import CarbonModel, Footprint
from auditor.model.forecast import MIN_TRIALS, BudgetView, Projection, project
from auditor.model.units import JOULES_PER_KWH, Metric

PLANNED_KEY = "planned_trials"  # as auditor.search.forecast keeps it with the sweep
ALL = 10**12


def finished_costs(ledger: Ledger, sweep: str) -> list[tuple[float, float]]:
    """Each finished trial's (IT kWh, GPU-hours), in the order they ended."""
    return [(u.energy_kwh, u.gpu_hours) for u in reversed(ledger.recent_usage(sweep, ALL))]


def budget_view(attrs: dict[str, Any], spent: Footprint | None) -> BudgetView | None:
    """The budget a sweep was run with (kept with it as ``budget``) and what it has counted:
    ``spent``'s amount in its metric. None without one, or for a cost budget without a price."""
    budget = attrs.get("budget")
    if not isinstance(budget, dict) or spent is None:
        return None
    try:
        metric = Metric(budget["metric"])
        used = spent.amount(metric)
        return BudgetView(metric, float(budget["limit"]), used, str(budget.get("text") or ""))
    except (KeyError, TypeError, ValueError, InvalidInputError):
        return None


def sweep_forecast(
    ledger: Ledger, sweep: SweepRecord, model: CarbonModel, *, done: int, running: bool, idle_kwh: float,
    spent: Footprint | None = None,
) -> Projection | None:
    """The projection of a sweep still running or with a planned size it has not reached
    (None otherwise, or before :data:`~auditor.model.forecast.MIN_TRIALS` finished trials).

    Args:
        ledger: the ledger.
        sweep: the sweep (its attributes hold the planned size and the budget, when known).
        model: the sweep's grid, PUE and price, as the report uses them.
        done: its trials so far (running ones too).
        running: True while it has running trials.
        idle_kwh: its energy between trials so far.
        spent: what its budget counts so far (the sweep's footprint, or the project's for a
            project budget).
    """
    planned = sweep.attrs.get(PLANNED_KEY)
    planned = int(planned) if isinstance(planned, (int, float)) and planned > 0 else None
    if not running and (planned is None or done >= planned):
        return None
    costs = finished_costs(ledger, sweep.name)
    return project(costs, model, planned=planned, done=done, idle_kwh=idle_kwh,
                   budget=budget_view(sweep.attrs, spent))


def plan(ledger: Ledger, like: str, model: CarbonModel, *, trials: int,
         budget: tuple[Metric, float] | None = None) -> Projection:
    """What ``trials`` trials cost if they cost what the finished trials of the sweep ``like``
    did (its idle share included), under ``model``; with ``budget`` (metric, limit), how many
    trials it covers (:attr:`Projection.lasts_to`).

    Raises:
        UnknownSweepError: no sweep called ``like`` (the message lists close names).
        InvalidInputError: fewer than :data:`~auditor.model.forecast.MIN_TRIALS` finished trials
            to project from, or ``trials`` below 1.
    """
    if trials < 1:
        raise InvalidInputError(f"--trials must be at least 1, not {trials}")
    [like] = ledger.named_sweeps([like])
    costs = finished_costs(ledger, like)
    if len(costs) < MIN_TRIALS:
        raise InvalidInputError(f"sweep {like!r} has {len(costs)} finished trials; a plan needs at least {MIN_TRIALS}")
    idle_j = sum(row.joules for row in ledger.aggregate() if row.sweep == like and row.state == "idle")
    view = BudgetView(budget[0], budget[1], 0.0) if budget is not None else None
    result = project(costs, model, planned=trials, done=0, idle_kwh=idle_j / JOULES_PER_KWH, budget=view)
    assert result is not None  # enough trials, checked above
    return result
