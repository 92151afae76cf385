"""A search's budget as every plugin keeps it: one guard, what it decided, the reservations.

A plugin tells the :class:`BudgetKeeper` what happened (a trial started, reported, ended) and
reads back whether the search must stop (:attr:`stopped`) and whether running trials must stop
too (:attr:`hard_stopped`). The keeper never raises into the search.

Example:
    >>> from auditor.budget import Budget
    >>> from auditor.ledger import Ledger
    >>> from auditor.model.carbon import CarbonModel
    >>> keeper = BudgetKeeper(Budget.parse("1 kWh"), CarbonModel(), reserve=False)
    >>> keeper.open(Ledger.open("sqlite://"), "doc")  # in memory
    >>> keeper.decide(after="trial 0").action.value, keeper.stopped
    ('go', False)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from auditor.budget.guard import BudgetGuard
from auditor.budget.limits import Action, Budget, Decision
from auditor.ledger import Ledger, TrialRecord, TrialState, Usage
from auditor.model.carbon import CarbonModel

logger = logging.getLogger("auditor")

HARD_CHECK_S = 0.5  # how often a hard budget re-reads the shared ledger from a running trial


class BudgetKeeper:
    """Holds one search to its budget, for any plugin.

    Args:
        budget: the budget (None: the keeper only records that nothing stops).
        model: turns energy and GPU time into CO2e and money.
        reserve: reserve each trial's forecast in the ledger before it runs, so that workers
            sharing a budget overshoot it by the forecast's error at most.
    """

    def __init__(self, budget: Budget | None, model: CarbonModel, *, reserve: bool = True) -> None:
        self.budget = budget
        self.model = model
        self.reserve = reserve
        self.guard: BudgetGuard | None = None
        self.stopped = False
        self.hard_stopped = False
        self._hard_checked_at = 0.0

    def __getstate__(self) -> dict[str, object]:
        """Frameworks pickle their callbacks (Ray, with the experiment's state): the guard and
        its connection stay behind and are made again by :meth:`open`; the stop is kept."""
        return {**self.__dict__, "guard": None}

    def say_if_it_cannot_act(self, gpus_in_reach: bool) -> str | None:
        """Warn, at the start of a search, if its budget can never stop anything (a GPU-hour
        budget with no GPU in reach), or its price can count nothing (a price per GPU-hour with
        no GPU); returns the reason, or None."""
        reason = self.budget.cannot_act(self.model.price, gpus_in_reach) if self.budget is not None else None
        if reason is None and not gpus_in_reach and self.model.price.per_gpu_hour is not None:
            reason = (f"the price is per GPU-hour (${self.model.price.per_gpu_hour:g}), and no GPU is in reach here: every "
                      "trial costs $0. Give a price per kWh for a search on CPUs")
        if reason:
            logger.warning("%s", reason)
        return reason

    def open(self, ledger: Ledger | None, sweep: str) -> None:
        """Attach to the search's ledger (again, once a ledger that failed to open answers)."""
        if self.budget is None:
            return
        if self.guard is None:
            self.guard = BudgetGuard(self.budget, self.model, ledger, sweep)
        elif self.guard.ledger is None:
            self.guard.ledger = ledger

    def decide(self, pending: Usage | None = None, *, after: str, holder: str | None = None,
               drawn: Mapping[str, Usage] | None = None) -> Decision | None:
        """Ask the budget (reserving for ``holder`` when reservations are on; ``drawn``: what
        each of this search's holders' running trials drew so far); remember a stop.

        Returns None without a budget.
        """
        if self.guard is None:
            return None
        decision = self.guard.decide(pending, after=after, holder=holder if self.reserve else None, drawn=drawn)
        if decision.action.stops:
            self.stopped = True
            self.hard_stopped = self.hard_stopped or decision.action is Action.STOP_ALL
        return decision

    def hard_stop_now(self, pending: Callable[[], Usage | None]) -> bool:
        """For a running trial asking whether to stop: True once a hard budget is spent, known
        here or seen in the shared ledger (read at most every :data:`HARD_CHECK_S`)."""
        if self.hard_stopped or self.guard is None:
            return self.hard_stopped
        now = time.monotonic()
        if now - self._hard_checked_at >= HARD_CHECK_S:
            self._hard_checked_at = now
            self.decide(pending(), after="a report")
        return self.hard_stopped

    def observe(self, record: TrialRecord) -> None:
        """A trial's final figures feed the forecast of the next one; a trial without energy
        is what a budget failing closed stops on. A trial the budget stopped or refused is no
        sample of what a trial costs (cut short, it would make the next one look cheap)."""
        if self.guard is None or record.state in (TrialState.RUNNING, TrialState.IDLE) or record.stopped_by_budget:
            return
        missing = "not measured" if "energy-missing" in record.flags else None
        self.guard.observe(Usage(record.energy_kwh, record.gpu_hours, 1, frozenset({record.trial_key})), missing=missing)

    def release(self, holder: str) -> None:
        """Drop ``holder``'s reservation (its trial is written or held back), and write the budget
        events still waiting for their sweep; never raising, and never waiting on a silent
        ledger longer than a decision does."""
        if self.guard is not None:
            self.guard.release_soon(holder if self.reserve else None)
