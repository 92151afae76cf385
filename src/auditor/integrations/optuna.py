"""Optuna plugin: every trial audited into the ledger, and budgets that stop the search.

Example:
    >>> import optuna, tempfile, os
    >>> from auditor.integrations.optuna import AuditCallback
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> study = optuna.create_study(study_name="doc")
    >>> audit = AuditCallback(study, ledger=os.path.join(tempfile.mkdtemp(), "ledger.db"), region="DE")
    >>> study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=3, callbacks=[audit])
    >>> audit.flush()
    >>> audit.ledger.count_trials("doc")
    3

How it sees every trial: given the study (``AuditCallback(study, ...)``, or
:meth:`AuditCallback.attach`), the callback wraps the study's sampler and pruner, whose
``before_trial`` and ``after_trial`` fire for every trial, even one failing with an exception
Optuna never shows to callbacks, and a resumed search whose budget is spent runs no trial.
Without the study it attaches on its first call: trials that ran before (the first of
``optimize``, of each ``n_jobs`` thread) are then measured after the fact from the meter's idle
energy, flagged ``after-the-fact``, and a warning says so.
Each trial's figures become user attributes (``auditor_energy_kwh``... and ``auditor``), its ledger record's.

Budgets (read from the shared ledger, so several processes or machines stop together):
``stop-new`` calls ``study.stop()`` once the spent amount, or it plus the next trial's forecast,
reaches the limit; ``hard`` also makes ``trial.should_prune()`` answer True in running trials.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState as OptunaState

from auditor.budget.limits import Budget, Mode
from auditor.config import plugin_settings
from auditor.errors import InvalidInputError
from auditor.integrations.optuna_hooks import AuditPruner, AuditSampler
from auditor.ledger import Ledger, TrialState
from auditor.meters import process_meter
from auditor.meters.sampler import Meter
from auditor.model.carbon import CarbonModel, Footprint
from auditor.model.forecast import Projection
from auditor.model.units import JOULES_PER_KWH
from auditor.search.constraint import CONSTRAINT_KEY, CostConstraint
from auditor.search.figures import user_attrs
from auditor.search.forecast import SearchForecast, idle_kwh
from auditor.search.keeper import BudgetKeeper
from auditor.search.local import LocalTrials
from auditor.search.recorder import Recorder
from auditor.search.records import fit_name, sweep_record
from auditor.search.safety import never_raise

logger = logging.getLogger("auditor")

_STATES = {
    OptunaState.COMPLETE: TrialState.COMPLETE,
    OptunaState.PRUNED: TrialState.PRUNED,
    OptunaState.FAIL: TrialState.FAILED,
}


_CONSTRAINT_ATTR = f"constraints:{CONSTRAINT_KEY}"  # where Optuna 5 keeps trial.constraints[CONSTRAINT_KEY]


def _constraints_supported() -> bool:
    """Optuna >= 5 reads a trial's constraints from its system attributes (Trial.set_constraint)."""
    return hasattr(optuna.trial.Trial, "set_constraint")


def run_of(study: optuna.Study) -> str | None:
    """The id of the study's run: the same for every process and every session that continue
    this study (the same storage's study id and first trial), different for a study created anew
    under the same name (its first trial is another) and for every in-memory study (which no
    other process shares). None until the study's first trial has started.

    Example:
        >>> study = optuna.create_study(study_name="doc-run")
        >>> _ = study.ask()
        >>> run_of(study) == run_of(study) != run_of(optuna.create_study(study_name="doc-run"))
        True
    """
    storage = study._storage
    try:
        first_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, 0)
        first = storage.get_trial(first_id)
    except KeyError:
        return None  # no trial yet
    if first.datetime_start is None:
        return None  # trial 0 is enqueued and not started: the run is named once it starts
    identity: list[Any] = [study._study_id, first_id, first.datetime_start.isoformat()]
    if isinstance(storage, optuna.storages.InMemoryStorage):
        identity += [socket.gethostname(), os.getpid(), id(storage)]
    return hashlib.sha256(repr(identity).encode()).hexdigest()[:8]


class AuditCallback:
    """An Optuna callback that records every trial's GPU-hours and energy and enforces a budget.

    Every argument is optional; unset ones come from the settings (``audit config``). Give it
    the study (``AuditCallback(study, ...)``) and it watches every trial from the first, live:
    without it, the callback only sees the study once the first trial has finished.

    Args:
        study: the study to watch from its first trial (the same as :meth:`attach` before
            ``optimize``). Without it, trials that ran before the first callback are measured
            after the fact (flagged ``after-the-fact``, without user attributes), and a first
            trial failing with an uncaught exception is never seen.
        ledger: ledger path or SQLAlchemy URL.
        budget: ``"2 kg"``, ``"50 kWh"``, ``"100 GPUh"``, ``"$250"`` or a :class:`Budget`.
        scope: ``sweep`` (this study) or ``project`` (the whole ledger).
        mode: ``warn``, ``stop-new`` (default) or ``hard``.
        region: grid of the electricity (``DE``, ``aws:us-east-1``, ``545 g/kWh``).
        pue: data-centre PUE.
        devices: GPUs the trials use: ``"auto"`` (those holding this process's CUDA context), ``"all"``, ids.
        sweep: the sweep's name (default: the study's name).
        price_per_gpu_hour, price_per_kwh: for costs and dollar budgets.
        meter: the meter to use (default: this process's).
        reserve: reserve this worker's next trial's forecast in the ledger (default), so that
            workers sharing a budget overshoot it by the forecast's error, not a trial each.
        fail: when the budget cannot be checked or a trial's energy is missing: ``open``
            (default: go on, with a warning) or ``closed`` (stop).
        constraint: the most a trial may cost, in any budget unit (``"0.02 kWh"``, ``"5 g"``):
            each trial's Optuna constraint ``auditor`` is set to its measured cost minus this
            when it ends (pruned and failed trials too), so constraint-aware samplers prefer
            configurations under it and ``study.best_trial`` respects it (Optuna >= 5).
        n_trials: the search's planned number of trials (``optimize``'s ``n_trials``, which Optuna
            does not show callbacks): after 5 finished trials the ``auditor`` logger says what they
            will cost, and when the budget runs out; kept with the sweep for ``audit report``.
    """

    def __init__(
        self,
        study: optuna.Study | None = None,
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
        constraint: str | CostConstraint | None = None,
        n_trials: int | None = None,
    ) -> None:
        self.settings = plugin_settings(
            ledger=ledger, budget=budget, scope=scope, mode=mode, region=region, pue=pue,
            price_per_gpu_hour=price_per_gpu_hour, price_per_kwh=price_per_kwh, fail=fail,
        )
        self.model: CarbonModel = self.settings.model
        self.budget: Budget | None = self.settings.budget
        self.keeper = BudgetKeeper(self.budget, self.model, reserve=reserve)
        if constraint is not None and not _constraints_supported():
            raise InvalidInputError(
                f"constraint= needs Optuna 5 or newer, which reads a trial's constraints without a "
                f"constraints_func (installed: optuna {optuna.__version__}): pip install -U 'optuna>=5'"
            )
        self.constraint = CostConstraint.parse(constraint, self.model) if constraint is not None else None
        self.forecaster = SearchForecast(self.model, n_trials, self.budget)
        self.devices = devices
        self.sweep = sweep
        self.meter = meter or process_meter()  # started now, so the first trial is in its history
        self.trials: LocalTrials | None = None
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self._attached: set[int] = set()
        self._stopped_by_budget: set[int] = set()
        self._refused: set[int] = set()  # started with the budget already spent: end at their first suggestion
        self._checked_first = False
        self._warned_late = False
        self._runs: dict[tuple[int, int], tuple[Any, str]] = {}  # (storage, study id) -> storage, run
        self._lock = threading.Lock()
        if study is not None:
            self.attach(study)

    # -- attaching ------------------------------------------------------------------------------

    def attach(self, study: optuna.Study) -> AuditCallback:
        """Start watching ``study``'s trials (done on the first call otherwise)."""
        with self._lock:
            if id(study) in self._attached:
                return self
            if self.trials is None:
                self.sweep = fit_name(self.sweep or study.study_name)
                recorder = Recorder(
                    self.settings.ledger, self.meter, self.sweep, "optuna",
                    sweep_record(self.model, self.budget, self.forecaster.planned, study=study.study_name,
                                 directions=[d.name.lower() for d in study.directions]),
                    on_record=lambda record: (self.keeper.observe(record), self.forecaster.observe(record)),
                    timeout_s=self.settings.ledger_timeout, spool_dir=self.settings.spool_dir,
                )
                self.trials = LocalTrials(recorder, self.devices, f"idle/{socket.gethostname()}/{os.getpid()}/{id(self)}")
                self.keeper.open(recorder.ledger, self.sweep)
                atexit.register(self.flush)
            if not isinstance(study.sampler, AuditSampler):
                study.sampler = AuditSampler(study.sampler, self)
            if self.budget is not None and self.budget.mode is Mode.HARD and not isinstance(study.pruner, AuditPruner):
                study.pruner = AuditPruner(study.pruner, self)
            self._attached.add(id(study))
        return self

    @property
    def ledger(self) -> Ledger | None:
        """The ledger, once attached and while it can be opened."""
        return self.trials.recorder.ledger if self.trials is not None else None

    @property
    def stopped_by_budget(self) -> bool:
        """True once the budget stopped the search (in this process)."""
        return self.keeper.stopped

    def usage(self, trial: optuna.Trial) -> Footprint:
        """What the running ``trial`` has cost so far: IT and facility energy, CO2e, GPU-hours
        (and cost with a price), measured as its final record will be and never more than it.
        Call it inside the objective, to return cost as a second objective or prune on it.

        Example:
            >>> import optuna, tempfile, os
            >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
            >>> study = optuna.create_study(directions=["minimize", "minimize"])
            >>> audit = AuditCallback(study, ledger=os.path.join(tempfile.mkdtemp(), "l.db"), region="FR")
            >>> def objective(trial):
            ...     loss = sum(range(trial.suggest_int("n", 10_000, 20_000)))
            ...     return loss, audit.usage(trial).energy_kwh
            >>> study.optimize(objective, n_trials=2, callbacks=[audit])
            >>> all(t.values[1] >= 0 for t in study.trials)
            True
        """
        so_far = self.trials.so_far(trial._trial_id) if self.trials is not None else None
        if so_far is None:
            raise ValueError(f"trial {trial.number} is not running under this callback: attach it before optimize")
        measurement, wall_start = so_far
        return self.model.footprint(measurement.joules / JOULES_PER_KWH, measurement.gpu_seconds / 3600,
                                    (wall_start, time.time()))  # the hour's grid, where a series is set

    def forecast(self) -> Projection | None:
        """What the search will cost at the rate of its finished trials (``n_trials`` of them, or
        one), and when the budget runs out: None before 5 trials (:mod:`auditor.model.forecast`)."""
        return self.forecaster.projection(idle_kwh(self.trials) if self.trials is not None else None)

    # -- the trial's life (called from Optuna's worker threads) --------------------------------

    @never_raise
    def _trial_started(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.trials is None:
            return
        self.trials.begin(trial._trial_id, trial_key=self._key(study, trial), number=trial.number, run=self._run(study),
                          params=lambda: study._storage.get_trial_params(trial._trial_id))
        if self.budget is None:
            return
        with self._lock:  # a resumed search whose budget is spent runs no trial, in no thread
            if not self._checked_first:
                self._checked_first = True
                self.keeper.decide(self.trials.pending_usage(), after=f"the start of trial {trial.number}")
        if self.keeper.stopped:  # no trial starts once the budget stopped the search
            self._refused.add(trial._trial_id)
            self._stopped_by_budget.add(trial._trial_id)
            if study._thread_local.in_optimize_loop:
                study.stop()

    @never_raise
    def _trial_ended(self, study: optuna.Study, trial: FrozenTrial, state: OptunaState, values: Sequence[float] | None) -> None:
        if self.trials is None:
            return
        record = self.trials.finish(trial._trial_id, **self._fields(study, trial, state, values))
        self.forecaster.observe(record)
        try:  # while the trial can be written: its ledger record's figures, each a number optuna-dashboard sorts
            for name, value in (user_attrs(record, self.model) if record is not None else {}).items():
                study._storage.set_trial_user_attr(trial._trial_id, name, value)
        except Exception as exc:  # noqa: BLE001 - some storages refuse; the ledger still has it
            logger.debug("auditor: user attributes not written: %s", exc)
        if self.constraint is not None and record is not None:
            footprint = self.model.footprint(record.energy_kwh, record.gpu_hours, (record.start_time, record.end_time))
            # what Trial.set_constraint writes, written through the storage: building an
            # optuna.Trial here would run the samplers' before_trial again for a finished trial
            study._storage.set_trial_system_attr(trial._trial_id, _CONSTRAINT_ATTR, self.constraint.value(footprint))

    def _run(self, study: optuna.Study) -> str:
        """The run ``study`` is (:func:`run_of`), asked of the storage once per study."""
        cache_key = (id(study._storage), study._study_id)
        cached = self._runs.get(cache_key)
        if cached is not None and cached[0] is study._storage:
            return cached[1]
        run = run_of(study)
        if run is None:
            return "0" * 8  # not named yet (trial 0 enqueued, not started): asked again next time
        self._runs[cache_key] = (study._storage, run)
        return run

    def _key(self, study: optuna.Study, trial: FrozenTrial) -> str:
        """The trial's key in the sweep: study, run and number, so that a study created anew
        under the same name keeps its trials beside the earlier run's."""
        return fit_name(f"{study.study_name}/{self._run(study)}/{trial.number}")  # Optuna allows names the ledger's columns do not

    def _fields(self, study: optuna.Study, trial: FrozenTrial, state: OptunaState, values: Sequence[float] | None) -> dict[str, Any]:
        stopped = trial._trial_id in self._stopped_by_budget
        return {"trial_key": self._key(study, trial), "name": None, "state": _STATES.get(state, TrialState.FAILED),
                "params": dict(trial.params), "objective": list(values) if values is not None else None,
                "number": trial.number, "run": self._run(study), "stopped_by_budget": stopped,
                "flags": ["stopped-by-budget"] if stopped else []}

    # -- after each trial ------------------------------------------------------------------------

    @never_raise
    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.attach(study)
        trials = self.trials
        if trials is None:
            return
        if not trials.recorded(trial._trial_id) and trial.state in _STATES and trial.datetime_start and trial.datetime_complete:
            # started before the callback was attached: measured from the meter's idle energy
            self._warn_late(trial)
            trials.record_past(trial._trial_id, trial.datetime_start.timestamp(), trial.datetime_complete.timestamp(),
                               **self._fields(study, trial, trial.state, trial.values))
        decision = None
        if self.budget is not None:
            self.keeper.open(self.ledger, self.sweep)  # the ledger may have opened late, after a fault
            decision = self.keeper.decide(trials.pending_usage(), after=f"trial {trial.number}", holder=self._holder)
            if decision is not None and decision.action.stops:
                study.stop()
        self.forecaster.after(trial.number + 1, lambda: idle_kwh(trials), decision)

    def _warn_late(self, trial: FrozenTrial) -> None:
        if not self._warned_late:
            self._warned_late = True
            logger.warning(
                "auditor: trial %d ran before the callback saw the study: its energy is taken from the "
                "meter's idle energy afterwards (flagged after-the-fact, no user attributes). Give the "
                "callback the study to watch every trial live: AuditCallback(study, ...)", trial.number)

    @never_raise
    def _hard_stop_now(self) -> bool:
        """True once a hard budget is spent (asked by the pruner: cheap, and throttled)."""
        return self.keeper.hard_stop_now(lambda: self.trials.pending_usage() if self.trials else None)

    # -- the end ---------------------------------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every finished trial is written to the ledger, and record the idle
        energy between trials so far (the search's overhead: sampling, storage, waiting)."""
        if self.trials is None:
            return
        self.trials.recorder.flush(timeout)
        self.trials.record_idle()
        self.keeper.release(self._holder)

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
        if self.trials is not None:
            atexit.unregister(self.trials.recorder.close)
            self.trials.recorder.close()
