"""Optuna plugin: every trial audited into the ledger, and budgets that stop the search.

Example:
    >>> import optuna, tempfile, os
    >>> from auditor.integrations.optuna import AuditCallback
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> audit = AuditCallback(ledger=os.path.join(tempfile.mkdtemp(), "ledger.db"), region="DE")
    >>> study = optuna.create_study(study_name="doc")
    >>> study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=3, callbacks=[audit])
    >>> audit.flush()
    >>> audit.ledger.count_trials("doc")
    3

How it sees every trial: on its first call (or on :meth:`AuditCallback.attach`), the callback
wraps the study's sampler and pruner. The sampler's ``before_trial`` and ``after_trial`` fire
for every trial, so each trial's interval opens when it starts and closes when it ends, even
one that fails with an exception Optuna never shows to callbacks. Trials that ran before the
callback was attached (the first trial of ``optimize``, those of ``n_jobs`` threads started
with it) are measured after the fact from the meter's idle energy over their start and end,
and flagged ``after-the-fact``. Call ``audit.attach(study)`` before ``optimize`` to measure those
exactly too.

Budgets: ``stop-new`` calls ``study.stop()`` once the spent amount, or the spent amount plus the
forecast of the next trial, reaches the limit; ``hard`` also makes ``trial.should_prune()``
answer True in running trials, which then end PRUNED and are marked stopped by the budget. The
spent amount is read from the shared ledger, so several processes or machines sharing one
Optuna storage and one ledger stop together.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial
from optuna.trial import TrialState as OptunaState

from auditor.budget.limits import Action, Budget, Mode
from auditor.model.carbon import CarbonModel
from auditor.config import plugin_settings
from auditor.budget.guard import BudgetGuard
from auditor.ledger import EnergyReading, Ledger, TrialRecord, TrialState, Usage
from auditor.meters import process_meter
from auditor.meters.attribution import Interval
from auditor.meters.sampler import Meter
from auditor.search.recorder import Recorder
from auditor.search.safety import never_raise

logger = logging.getLogger("auditor")


_STATES = {
    OptunaState.COMPLETE: TrialState.COMPLETE,
    OptunaState.PRUNED: TrialState.PRUNED,
    OptunaState.FAIL: TrialState.FAILED,
}
ATTR = "auditor"  # the user attribute optuna-dashboard shows


class _IdleMeasurement:
    """Idle energy per domain in the shape ``record_for`` reads from a measurement."""

    def __init__(self, joules: dict[str, float], methods: dict[str, str]) -> None:
        self.energy = {domain: EnergyReading(j, methods.get(domain, "none")) for domain, j in joules.items()}
        self.gpu_seconds = 0.0
        self.gpus: list[Any] = []
        self.flags: list[str] = []


class _AuditSampler(BaseSampler):
    """The study's own sampler, with the callback told when each trial starts and ends."""

    def __init__(self, base: BaseSampler, audit: AuditCallback) -> None:
        self._base = base
        self._audit = audit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        return self._base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]) -> dict[str, Any]:
        return self._base.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, name: str, distribution: Any) -> Any:
        return self._base.sample_independent(study, trial, name, distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._base.before_trial(study, trial)
        self._audit._trial_started(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: OptunaState, values: Sequence[float] | None) -> None:
        self._audit._trial_ended(study, trial, state, values)
        self._base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._base.reseed_rng()


class _AuditPruner(BasePruner):
    """The study's own pruner, answering "prune" to every running trial once a hard budget is spent."""

    def __init__(self, base: BasePruner, audit: AuditCallback) -> None:
        self._base = base
        self._audit = audit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if self._audit._hard_stop_now():
            self._audit._stopped_by_budget.add(trial._trial_id)
            return True
        return self._base.prune(study, trial)


class AuditCallback:
    """An Optuna callback that records every trial's GPU-hours and energy and enforces a budget.

    Every argument is optional; unset ones come from the settings (``audit config``).

    Args:
        ledger: ledger path or SQLAlchemy URL.
        budget: ``"2 kg"``, ``"50 kWh"``, ``"100 GPUh"``, ``"$250"`` or a :class:`Budget`.
        scope: ``sweep`` (this study) or ``project`` (the whole ledger).
        mode: ``warn``, ``stop-new`` (default) or ``hard``.
        region: grid of the electricity (``DE``, ``aws:us-east-1``, ``545 g/kWh``).
        pue: data-centre PUE.
        devices: GPUs the trials use: ``"auto"`` (those this process holds a CUDA context on),
            ``"all"``, or indices/UUIDs.
        sweep: the sweep's name (default: the study's name).
        price_per_gpu_hour, price_per_kwh: for costs and dollar budgets.
        meter: the meter to use (default: this process's).
        reserve: hold the forecast of this worker's next trial against the budget in the ledger
            (default), so that workers sharing a budget overshoot it by the forecast's error at
            most, not by one trial each.
        fail: what the budget does when it cannot be checked (the ledger does not answer) or a
            trial's energy is missing: ``open`` (default: the search goes on, with a warning)
            or ``closed`` (the search stops).
    """

    def __init__(
        self,
        *,
        ledger: str | None = None,
        budget: str | Budget | None = None,
        scope: str | None = None,
        mode: str | None = None,
        region: str | None = None,
        pue: float | None = None,
        devices: Any = "auto",
        sweep: str | None = None,
        price_per_gpu_hour: float | None = None,
        price_per_kwh: float | None = None,
        meter: Meter | None = None,
        reserve: bool = True,
        fail: str | None = None,
    ) -> None:
        config = plugin_settings(
            ledger=ledger, budget=budget, scope=scope, mode=mode, region=region, pue=pue,
            price_per_gpu_hour=price_per_gpu_hour, price_per_kwh=price_per_kwh, fail=fail,
        )
        self.model: CarbonModel = config.model
        self.budget: Budget | None = config.budget
        self.ledger_target = config.ledger
        self.ledger_timeout = config.ledger_timeout
        self.spool_dir = config.spool_dir
        self.reserve = reserve
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self.devices = devices
        self.sweep = sweep
        self.meter = meter or process_meter()  # started now, so the first trial is in its history
        self.guard: BudgetGuard | None = None
        self._recorder: Recorder | None = None
        self._attached: set[int] = set()
        self._intervals: dict[int, tuple[Interval, float]] = {}  # trial id -> interval, wall start
        self._recorded: set[int] = set()
        self._stopped_by_budget: set[int] = set()
        self._hard_stopped = False
        self._hard_checked_at = 0.0
        self._lock = threading.Lock()
        self.stopped_by_budget = False

    # -- attaching ------------------------------------------------------------------------------

    def attach(self, study: optuna.Study) -> AuditCallback:
        """Start watching ``study``'s trials (done on the first call otherwise)."""
        with self._lock:
            if id(study) in self._attached:
                return self
            if self._recorder is None:
                self.sweep = self.sweep or study.study_name
                self._recorder = Recorder(
                    self.ledger_target, self.meter, self.sweep, "optuna",
                    {"study": study.study_name, "directions": [d.name.lower() for d in study.directions]},
                    on_record=self._observe,
                    timeout_s=self.ledger_timeout,
                    spool_dir=self.spool_dir,
                )
                if self.budget is not None:
                    self.guard = BudgetGuard(self.budget, self.model, self._recorder.ledger, self.sweep)
            if not isinstance(study.sampler, _AuditSampler):
                study.sampler = _AuditSampler(study.sampler, self)
            if self.budget is not None and self.budget.mode is Mode.HARD and not isinstance(study.pruner, _AuditPruner):
                study.pruner = _AuditPruner(study.pruner, self)
            if not self._attached:
                self._attached_at = time.time()
                self._idle_at_attach = self.meter.idle_joules()
                atexit.register(self.flush)
            self._attached.add(id(study))
        return self

    @property
    def ledger(self) -> Ledger | None:
        """The ledger, once attached and while it can be opened."""
        return self._recorder.ledger if self._recorder is not None else None

    # -- the trial's life (called from Optuna's worker threads) --------------------------------

    @never_raise
    def _trial_started(self, study: optuna.Study, trial: FrozenTrial) -> None:
        interval = self.meter.begin(gpus=self.devices)
        wall_start = time.time()
        with self._lock:
            self._intervals[trial._trial_id] = (interval, wall_start)
        if self._recorder is not None:
            self._recorder.start(interval, trial_key=f"{study.study_name}/{trial.number}", number=trial.number,
                                 wall_start=wall_start)

    @never_raise
    def _trial_ended(self, study: optuna.Study, trial: FrozenTrial, state: OptunaState, values: Sequence[float] | None) -> None:
        with self._lock:
            started = self._intervals.pop(trial._trial_id, None)
        if started is None or self._recorder is None:
            return
        interval, wall_start = started
        self.meter.end(interval)
        self._write_user_attr(study, trial, interval)
        self._recorder.submit(interval, **self._fields(study, trial, state, values, wall_start))
        with self._lock:
            self._recorded.add(trial._trial_id)

    def _fields(self, study: optuna.Study, trial: FrozenTrial, state: OptunaState, values: Sequence[float] | None, wall_start: float, wall_end: float | None = None) -> dict[str, Any]:
        stopped = trial._trial_id in self._stopped_by_budget
        return {
            "trial_key": f"{study.study_name}/{trial.number}",
            "name": None,
            "state": _STATES.get(state, TrialState.FAILED),
            "wall_start": wall_start,
            "wall_end": wall_end or time.time(),
            "params": dict(trial.params),
            "objective": list(values) if values is not None else None,
            "number": trial.number,
            "stopped_by_budget": stopped,
            "flags": ["stopped-by-budget"] if stopped else [],
        }

    def _write_user_attr(self, study: optuna.Study, trial: FrozenTrial, interval: Interval) -> None:
        """Per-trial figures as a user attribute (optuna-dashboard shows it), while the trial may
        still be written: energy measured up to the last reading before its end (within 0.1 s);
        the ledger holds the final figure."""
        gpu_seconds = sum(interval.end - since for key, since in interval.devices.items() if key.startswith("gpu:"))  # type: ignore[operator]
        kwh = sum(interval.energy.values()) / 3.6e6
        footprint = self.model.footprint(kwh, gpu_seconds / 3600)
        try:
            study._storage.set_trial_user_attr(
                trial._trial_id,
                ATTR,
                {"gpu_hours": gpu_seconds / 3600, "energy_kwh": kwh, "co2e_kg": footprint.co2e_kg, "region": self.model.region.code},
            )
        except Exception as exc:  # noqa: BLE001 - some storages refuse; the ledger still has it
            logger.debug("auditor: user attribute not written: %s", exc)

    # -- after each trial ------------------------------------------------------------------------

    @never_raise
    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.attach(study)
        if trial._trial_id not in self._recorded and trial.state in _STATES:
            self._record_after_the_fact(study, trial)
        if self.guard is None:
            return
        self.guard.ledger = self.guard.ledger or self.ledger  # opened late, after a fault
        pending = self._recorder.pending_usage()  # type: ignore[union-attr]
        holder = self._holder if self.reserve else None
        decision = self.guard.decide(pending, after=f"trial {trial.number}", holder=holder)
        if decision.action.stops:
            self.stopped_by_budget = True
            if decision.action is Action.STOP_ALL:
                self._hard_stopped = True
            study.stop()

    def _record_after_the_fact(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """A trial that started before the callback was attached: measured from idle energy."""
        if trial.datetime_start is None or trial.datetime_complete is None:
            return
        offset = time.time() - self.meter.clock()
        start, end = trial.datetime_start.timestamp(), trial.datetime_complete.timestamp()
        try:
            measurement = self.meter.measure_past(start - offset, end - offset, gpus=self.devices)
        except Exception as exc:  # noqa: BLE001
            logger.warning("auditor: energy of trial %d not measured: %s", trial.number, exc)
            measurement = None
        fields = self._fields(study, trial, trial.state, trial.values, start, end)
        self._recorder.record_now(measurement, **fields)  # type: ignore[union-attr]
        with self._lock:
            self._recorded.add(trial._trial_id)

    def _observe(self, record: TrialRecord) -> None:
        """Each trial's final figures feed the budget's forecast of the next one."""
        if self.guard is not None:
            missing = "energy-missing" in record.flags and record.state is not TrialState.RUNNING
            self.guard.observe(Usage(record.energy_kwh, record.gpu_hours, 1), missing="not measured" if missing else None)

    @never_raise
    def _hard_stop_now(self) -> bool:
        """True once a hard budget is spent: known here, or seen in the shared ledger (read at
        most every half second, as ``should_prune`` may be called often)."""
        if self._hard_stopped or self.guard is None:
            return self._hard_stopped
        now = time.monotonic()
        if now - self._hard_checked_at >= 0.5:
            self._hard_checked_at = now
            decision = self.guard.decide(self._recorder.pending_usage() if self._recorder else None, after="a report")
            self._hard_stopped = decision.action is Action.STOP_ALL
        return self._hard_stopped

    # -- the end ---------------------------------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every finished trial is written to the ledger, and record the idle
        energy between trials so far (the search's overhead: sampling, storage, waiting)."""
        if self._recorder is None:
            return
        self._recorder.flush(timeout)
        self._record_idle()
        if self.guard is not None and self.reserve:
            self._release()

    def close(self) -> None:
        """Flush, then stop recording: for a callback whose search is over (the process
        flushes at exit otherwise). Held-back trials stay in the spool file for the next
        process that opens the ledger.

        Example:
            >>> audit = AuditCallback(ledger=":memory:")
            >>> audit.close()
        """
        atexit.unregister(self.flush)
        self.flush()
        if self._recorder is not None:
            atexit.unregister(self._recorder.close)
            self._recorder.close()

    @never_raise
    def _release(self) -> None:
        self.guard.release(self._holder)  # type: ignore[union-attr]

    @never_raise
    def _record_idle(self) -> None:
        now = self.meter.idle_joules()
        by_domain: dict[str, float] = {}
        for key, joules in now.items():
            domain = self.meter.devices[key].domain
            by_domain[domain] = by_domain.get(domain, 0.0) + max(0.0, joules - self._idle_at_attach.get(key, 0.0))
        methods = {d.domain: d.method for d in self.meter.devices.values()}
        self._recorder.record_now(  # type: ignore[union-attr]
            None if not by_domain else _IdleMeasurement(by_domain, methods),
            trial_key=f"idle/{socket.gethostname()}/{os.getpid()}/{id(self)}",
            name="idle between trials",
            state=TrialState.IDLE,
            wall_start=self._attached_at,
            wall_end=time.time(),
        )
