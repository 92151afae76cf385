"""Holding a search to its budget: the tally, the forecast, the announcements and the events.

A :class:`BudgetGuard` is what a plugin asks after each trial. It sums what is spent (the
trials in the shared ledger, for this sweep or the whole project, plus this process's trials
not yet written), forecasts the next trial from the recent ones, asks the :class:`Budget`, and
announces each warning level and the stop once: on the ``auditor`` logger and as a budget event
in the ledger (which budget, spent amount, when, overshoot, and the intensity and PUE used).
With several workers sharing the ledger, each one's guard sees every worker's trials, so the
limit holds for the whole search.

With an hourly intensity series in the model and a budget in CO2e, what is spent is the sum of
the ledger's rows each charged at the series' mean over its own interval
(:meth:`~auditor.model.carbon.CarbonModel.footprint_of`, the report's computation); energy not in
a row yet (this process's trials being written, other workers' reservations) and the next
trial's forecast are charged at the intensity in force now. Hours the series lacks make the
budget uncheckable, which fails open or closed as ``budget.fail`` says, naming the hours.

Plugins ask :meth:`BudgetGuard.decide`, which never raises: when the ledger cannot answer, or
a trial's energy is missing, the budget fails open (go on, one warning) or closed (stop), as
the budget's ``fail`` says. The guard reads and writes the ledger on its own thread and waits
at most ``wait_s`` for an answer (:func:`answer_wait_s`): a ledger server that stops answering
costs the search that wait once, then none until it answers again; the budget meanwhile fails
open or closed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from typing import Any

from auditor.budget.limits import Action, Budget, Decision, FailMode, Scope
from auditor.errors import AuditorError, UnknownSweepError
from auditor.ledger import BudgetEvent, Ledger, Usage
from auditor.ledger.calls import LedgerThread
from auditor.model.carbon import CarbonModel, Footprint
from auditor.model.units import Metric, format_amount

logger = logging.getLogger("auditor")

SERVER_WAIT_S = 5.0  # the longest a trial waits on a ledger server's answer to its budget


def answer_wait_s(ledger: Ledger | None) -> float:
    """How long the budget waits for the ledger's answer: a SQLite file's own busy timeout (a
    local file has no partition; its lock waits are real work), else at most
    :data:`SERVER_WAIT_S`, as a server that stops answering would hold every trial; with a
    second more where the ledger's own timeout comes first, so that its reason is the one said."""
    if ledger is None:
        return SERVER_WAIT_S
    if ledger.backend == "sqlite" or ledger.busy_timeout_s < SERVER_WAIT_S:
        return ledger.busy_timeout_s + 1.0
    return SERVER_WAIT_S


def _pid_alive(rest: str) -> bool:
    try:
        os.kill(int(rest.split(":", 1)[0]), 0)
    except ValueError:
        return True  # not a holder name of ours: leave it
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class BudgetGuard:
    """Checks a budget against a ledger shared by every worker of a search.

    Args:
        budget: the budget.
        model: turns energy and GPU time into CO2e and money.
        ledger: the shared ledger (None while it cannot be opened: :meth:`decide` then fails
            open or closed).
        sweep: this search's sweep.
        recent: how many recent trials the forecast averages.
    """

    def __init__(self, budget: Budget, model: CarbonModel, ledger: Ledger | None, sweep: str, recent: int = 10) -> None:
        self.budget, self.model, self.ledger, self.sweep = budget, model, ledger, sweep
        self._recent: deque[Usage] = deque(maxlen=recent)
        self._warm_up: Usage | None = None  # this process's first trial: its one-time warm-up stays out of the forecast
        self._announced: set[object] = set()
        self._lock = threading.Lock()
        self.last: Decision | None = None
        self._missing: str | None = None
        self._unchecked_warned = False
        self._dead_released = False
        self._seeded = False
        self._intensity: float | None = None  # the mean intensity of the last tally, with a series
        self._unsent: list[BudgetEvent] = []  # events whose sweep the ledger did not hold yet
        self._holding: dict[str, Usage] = {}  # what this guard reserved for each of its holders' trials
        self._calls = LedgerThread("auditor-budget")
        self._asking: tuple[Future[Any], float] | None = None  # the last ledger call, since when

    @property
    def _open_ledger(self) -> Ledger:
        """The ledger, for the calls made once a decision found it open (:meth:`decide` answers
        without one first)."""
        if self.ledger is None:
            raise AuditorError("the budget's ledger is not open")
        return self.ledger

    @property
    def _hourly(self) -> bool:
        """True when CO2e must follow the hours: a series is set and the budget is in CO2e."""
        return self.model.series is not None and self.budget.limit.metric is Metric.CO2E_KG

    def _now(self) -> tuple[float, float] | None:
        if not self._hourly:
            return None
        now = time.time()
        return (now, now)

    def _recorded(self, pending: Usage) -> Footprint | None:
        """With :attr:`_hourly`: the ledger's rows in the budget's scope (``pending``'s left
        out), each charged at its own hours. None otherwise."""
        if not self._hourly:
            return None
        scope = self.sweep if self.budget.scope is Scope.SWEEP else None
        try:
            rows = self.ledger.intervals(scope, exclude=(self.sweep, pending.keys))  # type: ignore[union-attr]
        except UnknownSweepError:
            rows = []
        return self.model.footprint_of([(a, b, j, g) for _, a, b, j, g in rows], what="the budget's trials")

    def _total(self, energy_kwh: float, gpu_hours: float, recorded: Footprint | None) -> Footprint:
        """The footprint of a tally: with a series, ``recorded`` (the rows at their own hours)
        plus the rest of the energy at the intensity in force now."""
        whole = self.model.footprint(energy_kwh, gpu_hours)
        if recorded is None:
            return whole
        rest_kwh = max(0.0, energy_kwh - recorded.energy_kwh)
        co2e = recorded.co2e_kg + (self.model.footprint(rest_kwh, 0.0, self._now()).co2e_kg if rest_kwh > 0 else 0.0)
        self._intensity = 1000 * co2e / whole.facility_kwh if whole.facility_kwh else None
        return replace(whole, co2e_kg=co2e)

    def observe(self, trial: Usage, missing: str | None = None) -> None:
        """Remember a finished trial's usage for the forecast; ``missing`` says why its energy
        could be neither measured nor estimated (a budget failing closed then stops)."""
        with self._lock:
            if self._warm_up is None:
                self._warm_up = trial
            self._recent.append(trial)
            if missing:
                self._missing = missing

    def _on_thread(self, call: Callable[[], Any]) -> tuple[Any, str | None]:
        """Run ``call`` on the guard's thread, waiting at most :func:`answer_wait_s`, and not at
        all while an earlier call still waits on the ledger. Returns its result, or None and
        why it did not come."""
        with self._lock:
            asking = self._asking
        if asking is not None and not asking[0].done():
            return None, f"the ledger has not answered for {time.monotonic() - asking[1]:.0f} s"
        future = self._calls.call(call)
        with self._lock:
            self._asking = (future, time.monotonic())
        wait_s = answer_wait_s(self.ledger)
        try:
            return future.result(timeout=wait_s), None
        except FutureTimeout:
            return None, f"the ledger did not answer within {wait_s:g} s"

    def decide(self, pending: Usage | None = None, after: str = "", holder: str | None = None,
               drawn: Mapping[str, Usage] | None = None) -> Decision:
        """:meth:`reserve` for ``holder`` (or :meth:`check` without one), never raising: when
        the ledger cannot answer (in time) or a trial's energy is missing, the budget fails open
        (go on, one warning) or closed (stop, announced as a stop is), as ``budget.fail`` says."""
        decision, why = self._on_thread(lambda: self._decide_now(pending, after, holder, drawn))
        return decision if why is None else self._unchecked(why, after)

    def release_soon(self, holder: str | None) -> None:
        """Write the events not written yet and drop ``holder``'s reservation (if any), waiting
        as :meth:`decide` does; never raising (a reservation left behind expires with its process)."""
        def release() -> None:
            self.send_events()
            if holder is not None and self.ledger is not None:
                self.release(holder)

        try:
            _, why = self._on_thread(release)
        except Exception as exc:  # noqa: BLE001
            why = str(exc)
        if why is not None:
            logger.warning("budget reservation of %s not released: %s", holder, why)

    def _decide_now(self, pending: Usage | None, after: str, holder: str | None,
                    drawn: Mapping[str, Usage] | None) -> Decision:
        self.send_events()
        if self._missing and self.budget.fail is FailMode.CLOSED:
            return self._unchecked(f"a trial's energy is missing ({self._missing})", after)
        if self.ledger is None:
            return self._unchecked("the ledger could not be opened", after)
        try:
            if holder is not None:
                if not self._dead_released:  # once, before this worker's first reservation
                    self.release_dead()
                    self._dead_released = True
                return self.reserve(holder, pending, after, drawn)
            return self.check(pending, after)
        except UnknownSweepError:  # its first record is on its way: nothing to reserve against yet
            return self.check(pending, after)
        except AuditorError as exc:
            return self._unchecked(str(exc), after)

    def _unchecked(self, why: str, after: str) -> Decision:
        last = self.last
        spent, limit = (last.spent, last.limit) if last else (0.0, self.budget.limit.value)  # the last known spend
        if self.budget.fail is FailMode.CLOSED:
            reason = f"budget {self.budget.describe()} cannot be checked: {why}; stopping, as budget_fail is closed"
            return self._settle(Decision(self.budget.stop_action, spent, limit, None, None, reason), after)
        if not self._unchecked_warned:
            self._unchecked_warned = True
            logger.warning("budget %s not checked: %s; the search goes on (budget_fail is open)",
                           self.budget.describe(), why)
        return Decision(Action.GO, spent, limit, None, None, f"not checked: {why}")

    def forecast(self) -> Footprint | None:
        """The mean footprint of the recent trials, or None before any; the first trial this
        process finished counts only while it is the only one (its warm-up would make the next
        trial look dear). A search resumed in a new process starts from the sweep's last trials
        in the ledger, so that it stops where the earlier process would have."""
        with self._lock:
            seed = not self._seeded and self.ledger is not None
            self._seeded = True
        if seed:  # (also when this process finished a trial first: one it saw only after the fact)
            with self._lock:
                counted = frozenset(key for usage in self._recent for key in usage.keys)
            try:
                earlier = self.ledger.recent_usage(self.sweep, self._recent.maxlen or 10, warm_ups=False,  # type: ignore[union-attr]
                                                   exclude=counted)
            except AuditorError:
                earlier = []  # a new sweep, or a ledger that does not answer: no forecast yet
            with self._lock:
                own = list(self._recent)
                self._recent.clear()
                self._recent.extend([*reversed(earlier), *own])
        with self._lock:
            recent = list(self._recent)
        # the first trial this process ran carries its one-time warm-up (imports, CUDA context,
        # allocator): it stays out of the mean once another trial has finished
        recent = [u for u in recent if u is not self._warm_up] or recent
        if not recent:
            return None
        energy = sum(u.energy_kwh for u in recent) / len(recent)
        gpu_hours = sum(u.gpu_hours for u in recent) / len(recent)
        return self.model.footprint(energy, gpu_hours, self._now())

    def spent(self, pending: Usage | None = None) -> Footprint:
        """What is spent: the ledger's trials in the budget's scope plus ``pending`` ones (a sweep
        not in the ledger yet has spent nothing there)."""
        pending = pending or Usage()
        try:
            usage = self._open_ledger.usage(self.sweep if self.budget.scope is Scope.SWEEP else None, exclude=(self.sweep, pending.keys))
        except UnknownSweepError:
            usage = Usage()
        return self._total(usage.energy_kwh + pending.energy_kwh, usage.gpu_hours + pending.gpu_hours, self._recorded(pending))

    def check(self, pending: Usage | None = None, after: str = "") -> Decision:
        """Decide, announcing each new warning level and the first stop.

        Args:
            pending: this process's trials not yet in the ledger.
            after: what just happened, for messages (``"trial 21"``).
        """
        decision = self.budget.check(self.spent(pending), self.forecast())
        return self._settle(decision, after)

    def reserve(self, holder: str, pending: Usage | None = None, after: str = "",
                drawn: Mapping[str, Usage] | None = None) -> Decision:
        """Decide, as :meth:`check`, but holding back what the running trials elsewhere reserved,
        and reserve this worker's forecast for its next trial in the same transaction when it
        may start one. The overshoot is then bounded by the forecast's error rather than by the
        number of workers. Without a forecast yet, as :meth:`check`.

        A reservation is never spent: ``pending`` holds what this process's trials drew (its
        running ones too, where a plugin knows it: Ray's driver), and ``drawn`` what each of this
        guard's holders' running trials drew so far, so that its own reservations hold back only
        what their trials have still to draw, and no joule is counted twice."""
        forecast = self.forecast()
        if forecast is None:
            return self.check(pending, after)
        pending = pending or Usage()
        drawn = drawn or {}
        decisions: list[Decision] = []
        recorded = self._recorded(pending)  # read before the reservation's transaction, which must stay short
        with self._lock:
            mine = {h: u for h, u in self._holding.items() if h != holder}
        own_kwh = sum(max(0.0, u.energy_kwh - drawn.get(h, Usage()).energy_kwh) for h, u in mine.items())
        own_h = sum(max(0.0, u.gpu_hours - drawn.get(h, Usage()).gpu_hours) for h, u in mine.items())

        def decide(spent_there: Usage, held_there: Usage) -> bool:
            spent = self._total(spent_there.energy_kwh + pending.energy_kwh, spent_there.gpu_hours + pending.gpu_hours, recorded)
            held = self.model.footprint(held_there.energy_kwh + own_kwh, held_there.gpu_hours + own_h, self._now())
            decision = self.budget.check(spent, forecast, held)
            decisions.append(decision)
            return not decision.action.stops

        # The reservation also holds this worker's finished trials not yet written, so that no
        # other worker sees a moment where they are neither reserved nor in the ledger.
        ahead = Usage(forecast.energy_kwh + pending.energy_kwh, forecast.gpu_hours + pending.gpu_hours, 1)
        scope_project = self.budget.scope is Scope.PROJECT
        allowed = self._open_ledger.reserve(self.sweep, holder, ahead, decide, project=scope_project, exclude=pending.keys,
                                      mine=list(mine))
        with self._lock:
            if allowed:
                self._holding[holder] = Usage(forecast.energy_kwh, forecast.gpu_hours, 1)
            else:
                self._holding.pop(holder, None)
        return self._settle(decisions[-1], after)

    def release(self, holder: str) -> None:
        """Drop this worker's reservation."""
        with self._lock:
            self._holding.pop(holder, None)
        self._open_ledger.release(holder)

    def release_dead(self) -> int:
        """Drop the reservations left by killed workers of this machine (holders are named
        ``host:pid:...``), so that a resumed search does not count them. Returns how many."""
        prefix = f"{socket.gethostname()}:"
        dead = [h for h in self._open_ledger.reservation_holders() if h.startswith(prefix) and not _pid_alive(h[len(prefix):])]
        self._open_ledger.release_all(dead)
        return len(dead)

    def _settle(self, decision: Decision, after: str) -> Decision:
        """Remember the decision and announce each new warning level and the first stop."""
        self.last = decision
        key: object = decision.action if decision.action.stops else decision.threshold
        if decision.action is Action.GO or key is None:
            return decision
        with self._lock:
            if key in self._announced:
                return decision
            self._announced.add(key)
        self._announce(decision, after)
        return decision

    def _announce(self, decision: Decision, after: str) -> None:
        metric = self.budget.limit.metric
        where = f" after {after}" if after else ""
        if decision.action.stops:
            what = "running trials stopped at their next report" if decision.action is Action.STOP_ALL else "no new trial starts"
            logger.warning("%s; %s%s", decision.reason, what, where)
        else:
            spent_pct, mark = round(100 * decision.fraction), round(100 * (decision.threshold or 0))
            logger.warning(  # the figure spent, and the mark it passed when that is not the same
                "budget %d %% spent%s (%s of %s)%s", spent_pct, where,
                format_amount(metric, decision.spent), format_amount(metric, decision.limit),
                f"; past the {mark} % mark" if spent_pct != mark else "",
            )
        self._unsent.append(
                BudgetEvent(
                    budget=self.budget.text or self.budget.limit.describe(),
                    metric=metric.value,
                    limit_value=decision.limit,
                    scope=self.budget.scope.value,
                    mode=self.budget.mode.value,
                    action=decision.action.value,
                    spent=decision.spent,
                    forecast=decision.forecast,
                    overshoot=decision.overshoot,
                    reason=decision.reason,
                    sweep=self.sweep,
                    intensity_g_per_kwh=self._intensity if self._hourly and self._intensity is not None
                    else self.model.region.g_co2e_per_kwh,
                    pue=self.model.effective_pue,
                )
        )
        if self._calls.is_current():  # deciding on the guard's thread: written before the decision is handed back
            self.send_events()
        else:  # a decision the ledger did not answer in time: written once it answers, never waited on here
            self._calls.call(self.send_events)

    def send_events(self) -> None:
        """Write the events not written yet. One whose sweep the ledger does not hold yet (the
        search's first records are still on their way: a stop racing the sweep's creation) waits
        for the next decision or the search's flush; any other failure drops it with a warning."""
        with self._lock:
            unsent, self._unsent = self._unsent, []
        for index, event in enumerate(unsent):
            try:
                if self.ledger is None:
                    raise UnknownSweepError("the ledger did not open")
                self.ledger.record_budget_event(event)
            except UnknownSweepError:
                with self._lock:
                    self._unsent[:0] = unsent[index:]
                return
            except Exception as exc:  # noqa: BLE001 - the event is worth less than the search
                logger.warning("budget event not recorded: %s", exc)
