"""Ray Tune plugin: every trial audited on the node where it runs, and budgets that end the run.

Example::

    from ray import tune
    from auditor.integrations.ray_tune import AuditLoggerCallback, with_audit

    audit = AuditLoggerCallback(budget="50 kWh", region="US")
    tuner = tune.Tuner(with_audit(train_fn), param_space=...,
                       run_config=tune.RunConfig(callbacks=[audit], stop=audit.stopper))

How it works (the README's "Ray Tune" section says more):

- Each node runs one meter, a Ray actor (``auditor-meter-<node id>``, no CPU reserved) sampling
  its GPUs. A trial wrapped by :func:`with_audit` opens an interval there on the GPUs Ray gave it
  (trials sharing a GPU share its energy); its own process meters its CPU and memory. A Ray Train
  loop wrapped by :func:`with_audit` and run by a trainer inside the trial is charged to it, each
  worker on its own node. What the experiment draws outside trials is its idle row
  (:mod:`~auditor.integrations.ray_tune_overhead`).
- Results get the figures so far under ``auditor/`` (:mod:`~auditor.integrations.ray_tune_trial`),
  and :func:`usage` gives them inside the trainable, with this callback's carbon model.
- A trial's final figures go to the node's meter when it ends; the callback collects them,
  writes the trial to the ledger and gives them to its last result (Ray's ``ResultGrid``).
- Budgets: the driver sums the ledger and the running trials' last figures, and reserves each
  starting trial's forecast. ``stop-new`` ends the experiment through ``audit.stopper``;
  ``hard`` also stops each running trial at its next report; given ``sweep=``, a budget already
  spent is seen before any trial starts, and none runs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

import ray
from auditor.integrations.ray_tune_control import AuditStopper, running_scheduler
from auditor.integrations.ray_tune_overhead import ExperimentOverhead
from auditor.integrations.ray_tune_worker import (
    NodeMeter,
    node_meter,
    start_node_meters,
    tell_node_meters,
    usage,
    with_audit,
)
from ray.tune.logger import LoggerCallback

from auditor.budget.limits import Budget
from auditor.config import plugin_settings
from auditor.ledger import Ledger
from auditor.ledger.writer import LedgerWriter
from auditor.search.figures import ENERGY_CLOCK
from auditor.search.keeper import BudgetKeeper
from auditor.search.recorder import HEARTBEAT_S
from auditor.search.records import fit_name, sweep_record
from auditor.search.remote import (
    Ending,
    carry_figures,
    final_record,
    pending_usage,
    running_record,
    scheduler_horizon,
    usage_of,
)
from auditor.search.safety import never_raise

logger = logging.getLogger("auditor")


class AuditLoggerCallback(LoggerCallback):
    """A Ray Tune callback that records every trial's GPU-hours and energy and enforces a budget.

    Takes the options of the Optuna plugin: ``ledger``, ``budget``, ``scope``, ``mode``,
    ``region``, ``pue``, ``sweep`` (default: the experiment's name), ``price_per_gpu_hour``,
    ``price_per_kwh``, ``reserve``, ``fail``. ``audit.stopper`` is the :class:`ray.tune.Stopper`
    sharing its tally.

    ``scheduler``: the experiment's ASHA or HyperBand scheduler, found in Ray's controller if not
    given (:mod:`~auditor.integrations.ray_tune_control`): trials that reach its ``max_t`` are
    recorded ``complete``, those it cuts short ``stopped``.
    """

    def __init__(self, *, ledger: str | None = None, budget: str | Budget | None = None, scope: str | None = None,
                 mode: str | None = None, region: str | None = None, pue: float | None = None, sweep: str | None = None,
                 price_per_gpu_hour: float | None = None, price_per_kwh: float | None = None, reserve: bool = True,
                 fail: str | None = None, scheduler: Any = None) -> None:
        self.settings = plugin_settings(
            ledger=ledger, budget=budget, scope=scope, mode=mode, region=region, pue=pue,
            price_per_gpu_hour=price_per_gpu_hour, price_per_kwh=price_per_kwh, fail=fail,
        )
        self.model = self.settings.model
        self.budget = self.settings.budget
        self.keeper = BudgetKeeper(self.budget, self.model, reserve=reserve)
        self.sweep = sweep
        self.horizon: tuple[str, float] | None = None
        self.energy_clock = False
        self._use_scheduler(scheduler)
        self.writer: LedgerWriter | None = None
        self.stopper = AuditStopper(self)
        self.stopped_by_budget_ids: set[str] = set()
        self._latest: dict[str, dict[str, Any]] = {}
        self._started: dict[str, float] = {}
        self._recorded: set[str] = set()
        self._closing: dict[str, tuple[list[Any], Ending]] = {}  # trial id -> refs to its final figures, its end
        self._beats: dict[str, float] = {}
        self._refused = False  # the budget was spent before the experiment began: no trial runs
        self._nodes: list[str] = []
        self._overhead: ExperimentOverhead | None = None  # the experiment's cost outside trials: its idle row
        self._lock = threading.Lock()
        if ray.is_initialized():  # the meters start while Tune sets the experiment up
            self._nodes = start_node_meters()

    def _use_scheduler(self, scheduler: Any) -> None:
        if scheduler is not None:
            self.horizon = scheduler_horizon(scheduler)
            self.energy_clock = getattr(scheduler, "_time_attr", None) == ENERGY_CLOCK  # its rungs count joules

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles callbacks with the experiment's state: leave the connection and lock out."""
        return {**self.__dict__, "writer": None, "_lock": None, "_closing": {}, "_overhead": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def stopped_by_budget(self) -> bool:
        """True once the budget ended the experiment."""
        return self.keeper.stopped

    @property
    def hard_stopped(self) -> bool:
        """True once a hard budget stops running trials too."""
        return self.keeper.hard_stopped

    @property
    def ledger(self) -> Ledger | None:
        """The ledger, once a trial started and while it can be opened."""
        return self.writer.ledger if self.writer is not None else None

    @never_raise
    def setup(self, **info: Any) -> None:
        """Start a meter on every node (if not started when this callback was made), and tell
        them this experiment's carbon model, which :func:`usage` in its trials computes with."""
        super().setup(**info)
        self._planned = info.get("total_num_samples") or info.get("num_samples")  # the report's forecast
        if self.horizon is None:  # the scheduler written once, in TuneConfig: found where Ray runs it
            self._use_scheduler(running_scheduler())
        self._nodes = start_node_meters()
        self._overhead = ExperimentOverhead(time.time())
        self._settle()
        self.keeper.say_if_it_cannot_act(gpus_in_reach=ray.cluster_resources().get("GPU", 0) > 0)
        if self.budget is not None and self.sweep:  # a budget spent already: no trial runs
            self._open(None)
            self.keeper.decide(after="the start of the experiment")
            self._refuse(self.keeper.stopped)

    @never_raise
    def _settle(self) -> None:  # the meters hand it to each trial as it begins, in the same round trip
        overhead = self._overhead.settings() if self._overhead is not None else {}
        tell_node_meters(self._nodes, "settle", {"model": self.model, "energy_clock": self.energy_clock, **overhead})

    def _refuse(self, refused: bool) -> None:  # with_audit runs no trial of a search refused here
        if refused or self._refused:
            tell_node_meters(self._nodes, "refuse", refused)
        self._refused = refused

    def _open(self, trial: Any | None) -> None:
        if self.writer is None:
            self.sweep = fit_name(self.sweep or trial.experiment_dir_name)
            attrs = sweep_record(self.model, self.budget, getattr(self, "_planned", None))
            self.writer = LedgerWriter(self.settings.ledger, self.sweep, "ray", attrs,
                                       timeout_s=self.settings.ledger_timeout, spool_dir=self.settings.spool_dir)
        self.keeper.open(self.ledger, self.sweep)  # type: ignore[arg-type]
        if trial is not None:
            self._started.setdefault(trial.trial_id, time.time())

    def _holder(self, trial_id: str) -> str:
        return f"{socket.gethostname()}:{os.getpid()}:ray:{self.sweep}:{trial_id}"

    @never_raise
    def log_trial_start(self, trial: Any) -> None:
        if self._refused:
            return  # not run: nothing to record
        self._open(trial)
        self._heartbeat(trial, force=True)
        self._collect()
        if self.keeper.reserve and not self.keeper.stopped:  # running trials' draw is spent, the rest of their reservation held
            drawn = {self._holder(tid): usage_of(r) for tid, r in self._latest.items() if tid not in self._recorded}
            decision = self.keeper.decide(pending_usage(self._latest, self._recorded, self.writer.held if self.writer else []),
                                          after=f"the start of trial {trial.trial_id}", holder=self._holder(trial.trial_id), drawn=drawn)
            if decision is not None and decision.action.stops:
                self.stopped_by_budget_ids.add(trial.trial_id)  # started past the budget: stopped at its first report

    def _heartbeat(self, trial: Any, force: bool = False) -> None:
        """The trial's row as ``running`` with its last figures, at its start and every few
        seconds: a driver killed mid-experiment leaves its running trials in the ledger."""
        now = time.time()
        if trial.trial_id in self._recorded or (not force and now - self._beats.get(trial.trial_id, 0.0) < HEARTBEAT_S):
            return
        self._beats[trial.trial_id] = now
        self.writer.write([running_record(  # type: ignore[union-attr]
            self.sweep, trial.trial_id, str(getattr(trial, "experiment_tag", "") or trial.trial_id),  # type: ignore[arg-type]
            self._started[trial.trial_id], dict(trial.config or {}), self._latest.get(trial.trial_id, {}),
        )])

    @never_raise
    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        self._open(trial)
        self._latest[trial.trial_id] = carry_figures(self._latest.get(trial.trial_id, {}), result)
        self._heartbeat(trial)
        self._collect()
        if self.keeper.guard is None:
            return
        usage = pending_usage(self._latest, self._recorded, self.writer.held if self.writer else [])
        self.keeper.decide(usage, after=f"a result of trial {trial.trial_id}")

    @never_raise
    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        if self._refused:
            return
        self._open(trial)
        self._close(trial, failed=failed, at_end=False)
        self._collect()

    @never_raise
    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        for trial in trials:
            if trial.trial_id in self._started and trial.trial_id not in self._closing:
                self._close(trial, failed=False, at_end=True)
        self._collect(wait_s=60.0)
        if self._overhead is not None and self.writer is not None:
            self._overhead.update(self.writer, self.sweep, self._nodes, final=True)  # type: ignore[arg-type]
        self._refuse(False)
        if self.writer is not None:
            self.writer.close()

    # Ray holds a trial's worker in its last report until the driver's callbacks return, so a
    # trial's final figures are asked for here without waiting, and written once they come.

    def _close(self, trial: Any, failed: bool, at_end: bool) -> None:
        if trial.trial_id in self._closing:
            return
        latest = self._latest.get(trial.trial_id, {})
        node_id = latest.get("auditor/node_id")
        refs = []
        # a trial that never reported does not say where it ran: every node's meter is asked
        for node in [node_id] if node_id else self._nodes:
            try:
                refs.append(node_meter(node).final.remote(trial.trial_id))
            except Exception as exc:  # noqa: BLE001 - fall back on the last report's figures
                logger.warning("final figures of trial %s not asked for: %s", trial.trial_id, exc)
        by_budget = trial.trial_id in self.stopped_by_budget_ids or (at_end and self.stopped_by_budget)
        self._closing[trial.trial_id] = (refs, Ending(
            failed=failed, cut_short=at_end, by_budget=by_budget, end=time.time(), latest=latest,
            reached_end=self.horizon is not None and float(latest.get(self.horizon[0], 0) or 0) >= self.horizon[1],
            params=dict(trial.config or {}), name=str(getattr(trial, "experiment_tag", "") or trial.trial_id),
            shown=trial.last_result,  # Ray's ResultGrid shows it: it gets the ledger's figures
        ))

    def _collect(self, wait_s: float = 0.0) -> None:
        waiting = {trial_id: c for trial_id, c in self._closing.items() if trial_id not in self._recorded}
        refs = [ref for trial_refs, _ in waiting.values() for ref in trial_refs]
        ready: set[Any] = set(refs)
        if refs:
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=wait_s)
            ready = set(done)
        for trial_id, (trial_refs, ending) in waiting.items():
            if not all(ref in ready for ref in trial_refs):
                if wait_s:  # the experiment is over: record what is known
                    self._record(trial_id, ending, None)
                continue
            finals = []
            for ref in trial_refs:
                try:
                    finals.append(ray.get(ref))
                except Exception as exc:  # noqa: BLE001
                    logger.warning("final figures of trial %s not collected: %s", trial_id, exc)
            self._record(trial_id, ending, next((f for f in finals if f is not None), None))
        if self._overhead is not None and self.writer is not None:  # the idle row: the cost outside trials
            self._overhead.update(self.writer, self.sweep, self._nodes)  # type: ignore[arg-type]

    def _record(self, trial_id: str, ending: Ending, final: dict[str, Any] | None) -> None:
        with self._lock:
            if trial_id in self._recorded:
                return
            self._recorded.add(trial_id)
        record = final_record(self.sweep, trial_id, self._started.get(trial_id, ending.end), ending, final)  # type: ignore[arg-type]
        self.writer.write([record])  # type: ignore[union-attr] - held back (and spooled) if the ledger refuses it
        ending.show(record)
        self.keeper.observe(record)
        self.keeper.release(self._holder(trial_id))  # its real cost is written (or held back, and counted)


__all__ = ["AuditLoggerCallback", "NodeMeter", "node_meter", "usage", "with_audit"]
