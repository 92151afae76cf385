"""The forecast a running search logs: what its planned trials will cost, and when its budget
runs out, from the trials this process has finished.

The projection itself is :func:`auditor.model.forecast.project` (the one ``audit report`` and
``audit plan`` use); this module feeds it a search's finished trials as they end and says it on
the ``auditor`` logger once :data:`~auditor.model.forecast.MIN_TRIALS` trials have finished,
and again when the budget's 50 % and 80 % warnings are announced.

Example:
    >>> from auditor.ledger import TrialRecord
    >>> from auditor.meters.base import EnergyReading
    >>> from auditor.model.carbon import CarbonModel
    >>> forecast = SearchForecast(CarbonModel(), planned=100)
    >>> for i in range(5):
    ...     forecast.observe(TrialRecord(sweep="doc", trial_key=str(i), state="complete", start_time=0.0,
    ...                                  energy={"cpu": EnergyReading(3600.0 * (1 + i % 2), "estimate-tdp")}))
    >>> round(forecast.after(5).total.energy_kwh, 6)  # the first (1 Wh), then 99 of 1.5 Wh on average
    0.1495
"""

from __future__ import annotations

import logging
import operator
import threading
from collections.abc import Callable
from typing import Any

from auditor.budget.limits import Budget, Decision
from auditor.errors import InvalidInputError
from auditor.ledger import TrialRecord, TrialState
from auditor.model.carbon import CarbonModel
from auditor.model.forecast import BudgetView, Projection, describe, project
from auditor.model.units import JOULES_PER_KWH

logger = logging.getLogger("auditor")

PLANNED_KEY = "planned_trials"  # the sweep attribute holding a search's planned size
LOGGED_LEVELS = (0.5, 0.8)  # the budget warnings the forecast is said again with


def _trial_count(value: Any) -> int:
    """``n_trials`` as a count (a numpy integer too), or one clear error."""
    try:
        count = operator.index(value) if not isinstance(value, bool) else -1
    except TypeError:
        count = -1
    if count < 1:
        raise InvalidInputError(f"n_trials must be a whole number of trials, at least 1, not {value!r}")
    return count


def sweep_attrs(planned: int | None) -> dict[str, Any]:
    """What a search keeps with its sweep so that ``audit report`` can project it too (the
    budget is kept as ``budget``, :func:`~auditor.search.records.budget_record`).

    Example:
        >>> sweep_attrs(200), sweep_attrs(None)
        ({'planned_trials': 200}, {})
    """
    return {PLANNED_KEY: int(planned)} if planned is not None else {}


def idle_kwh(trials: Any) -> float:
    """The energy between trials so far of a :class:`~auditor.search.local.LocalTrials`."""
    try:
        return sum(trials._idle_since_start().values()) / JOULES_PER_KWH
    except Exception:  # noqa: BLE001 - a forecast without the idle share beats none
        return 0.0


class SearchForecast:
    """A running search's forecast, fed with its finished trials.

    Args:
        model: the search's grid, PUE and price.
        planned: the search's planned number of trials, if known.
        budget: the search's budget, if any.
    """

    def __init__(self, model: CarbonModel, planned: int | None = None, budget: Budget | None = None) -> None:
        if planned is not None:
            planned = _trial_count(planned)
        self.model, self.planned, self.budget = model, planned, budget
        self._costs: dict[str, tuple[float, float, float]] = {}  # trial key -> end time, IT kWh, GPU-hours
        self._done = 0
        self._idle_kwh = 0.0
        self._decision: Decision | None = None
        self._said: set[object] = set()
        self._lock = threading.Lock()
        self.last: Projection | None = None  # the last projection said on the logger

    def observe(self, record: TrialRecord | None) -> None:
        """A finished trial's record (each trial counted once, however often it is seen)."""
        if record is None or record.state in (TrialState.RUNNING, TrialState.IDLE):
            return
        with self._lock:
            self._costs.setdefault(record.trial_key, (record.end_time or record.start_time, record.energy_kwh, record.gpu_hours))

    def projection(self, idle_kwh: float | None = None) -> Projection | None:
        """The projection from the trials finished so far (None before enough of them), with
        ``idle_kwh`` between trials so far when given (else as last told)."""
        with self._lock:
            if idle_kwh is not None:
                self._idle_kwh = idle_kwh
            ended, done, idle, decision = sorted(self._costs.values()), self._done, self._idle_kwh, self._decision
        costs = [(kwh, gpu_hours) for _end, kwh, gpu_hours in ended]  # in order of end, as the ledger gives them to the report
        budget = None
        if self.budget is not None and decision is not None:
            budget = BudgetView(self.budget.limit.metric, decision.limit, decision.spent, self.budget.text)
        return project(costs, self.model, planned=self.planned, done=done or None, idle_kwh=idle, budget=budget)

    def after(self, done: int, idle: float | Callable[[], float] = 0.0, decision: Decision | None = None) -> Projection | None:
        """After a trial: ``done`` trials so far in the search, ``idle`` kWh between trials (or
        what gives it), the budget's ``decision``. Logs the forecast the first time there is one
        and at the budget's 50 and 80 % warnings, and returns it then; None otherwise.

        Cheap between those moments (nothing is projected), and quiet for a search with neither
        a planned size nor a budget: there is nothing to forecast toward.
        """
        with self._lock:
            self._done = max(self._done, done)
            self._decision = decision or self._decision
        if self.planned is None and self.budget is None:
            return None
        keys: list[object] = ["first"]
        if decision is not None and not decision.action.stops and decision.threshold in LOGGED_LEVELS:
            keys.append(decision.threshold)
        with self._lock:
            if all(key in self._said for key in keys):
                return None
        projection = self.projection(idle() if callable(idle) else idle)
        if projection is None:
            return None
        with self._lock:
            new = [key for key in keys if key not in self._said]
            self._said.update(new)
        if not new:
            return None
        self.last = projection
        logger.info("forecast after %d finished trials: %s", projection.trials_seen, describe(projection))
        return projection
