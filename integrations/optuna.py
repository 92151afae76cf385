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

Given the study, the callback wraps its sampler and pruner, whose ``before_trial`` and
``after_trial`` fire for every trial, even one failing uncaught. Without it, it attaches on its
first call: trials run before are measured after the fact (flagged ``after-the-fact``), with a
warning. Each trial's figures become user attributes (``auditor_energy_kwh``...), its record's.

Budgets (read from the shared ledger, so several processes or machines stop together):
``stop-new`` calls ``study.stop()`` once the spent amount, or it plus the next trial's forecast,
reaches the limit; ``hard`` also makes ``trial.should_prune()`` answer True in running trials.
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import optuna
from auditor.integrations.optuna_figures import require_constraints, warn_late, write_figures
from auditor.integrations.optuna_hooks import AuditPruner, AuditSampler
from auditor.integrations.optuna_runs import RunNames
from optuna.trial import FrozenTrial
from optuna.trial import TrialState as OptunaState

from auditor.budget.limits import Budget, Mode
from auditor.config import plugin_settings
from auditor.ledger import Ledger, TrialState
from auditor.meters import process_meter
from auditor.meters.sampler import Meter
from auditor.model.carbon import CarbonModel, Footprint
from auditor.model.forecast import Projection
from auditor.model.units import JOULES_PER_KWH
from auditor.search.constraint import CostConstraint
from auditor.search.forecast import SearchForecast, idle_kwh
from auditor.search.keeper import BudgetKeeper
from auditor.search.local import LocalTrials
from auditor.search.recorder import Recorder
from auditor.search.records import fit_name, sweep_record
from auditor.search.safety import never_raise

_STATES = {OptunaState.COMPLETE: TrialState.COMPLETE, OptunaState.PRUNED: TrialState.PRUNED, OptunaState.FAIL: TrialState.FAILED}


class AuditCallback:
    """An Optuna callback that records every trial's GPU-hours and energy and enforces a budget.
    Every argument is optional; unset ones come from the settings (``audit config``).

    Args:
        study: the study, watched live from its first trial (as :meth:`attach` before
            ``optimize``). Without it, trials run before the first callback are measured after
            the fact (flagged ``after-the-fact``), and a first trial failing uncaught is lost.
        ledger: ledger path or SQLAlchemy URL.
        budget: ``"2 kg"``, ``"50 kWh"``, ``"100 GPUh"``, ``"$250"`` or a :class:`Budget`;
            ``scope``: ``sweep`` or ``project``; ``mode``: ``warn``, ``stop-new`` (default), ``hard``.
        region: grid of the electricity (``DE``, ``aws:us-east-1``, ``545 g/kWh``); ``pue``.
        devices: GPUs the trials use: ``"auto"`` (those holding this process's CUDA context), ``"all"``, ids.
        sweep: the sweep's name (default: the study's name).
        price_per_gpu_hour, price_per_kwh: for costs and dollar budgets.
        meter: the meter to use (default: this process's).
        reserve: reserve this worker's next trial's forecast in the ledger (default), so that
            workers sharing a budget overshoot it by the forecast's error, not a trial each.
        fail: when the budget cannot be checked or a trial's energy is missing: ``open``
            (default: go on, with a warning) or ``closed`` (stop).
        constraint: the most a trial may cost, in any budget unit (``"0.02 kWh"``, ``"5 g"``):
            each trial's Optuna constraint ``auditor`` is its measured cost minus this (Optuna >= 5).
        n_trials: the planned number of trials (Optuna does not show callbacks ``optimize``'s):
            after 5 finished trials the ``auditor`` logger forecasts the search's cost.
        attributes: write each trial's figures as its user attributes (default; what
            optuna-dashboard plots). ``False`` saves a storage write a trial (a commit on SQLite or
            PostgreSQL); the ledger, the report and the constraint are unaffected.
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
        attributes: bool = True,
    ) -> None:
        self.settings = plugin_settings(
            ledger=ledger, budget=budget, scope=scope, mode=mode, region=region, pue=pue,
            price_per_gpu_hour=price_per_gpu_hour, price_per_kwh=price_per_kwh, fail=fail,
        )
        self.model: CarbonModel = self.settings.model
        self.budget: Budget | None = self.settings.budget
        self.keeper = BudgetKeeper(self.budget, self.model, reserve=reserve)
        if constraint is not None:
            require_constraints()
        self.constraint = CostConstraint.parse(constraint, self.model) if constraint is not None else None
        self.attributes = attributes
        self.forecaster = SearchForecast(self.model, n_trials, self.budget)
        self.devices = devices
        self.sweep = sweep
        self.meter = meter or process_meter()  # started now, so the first trial is in its history
        self.meter.own_idle(self)  # the idle energy from now on is this search's: a first trial seen late claims it back
        self.keeper.say_if_it_cannot_act(gpus_in_reach=any(d.is_gpu for d in self.meter.devices.values()))
        self.trials: LocalTrials | None = None
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self._attached: set[int] = set()
        self._stopped_by_budget: set[int] = set()
        self._refused: set[int] = set()  # started with the budget already spent: end at their first suggestion
        self._checked_first = False
        self._warned_late = False
        self._runs = RunNames()
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
                self.trials = LocalTrials(recorder, self.devices, f"idle/{socket.gethostname()}/{os.getpid()}/{id(self)}",
                                          idle_owner=self, own_threads=True)
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
            >>> study = optuna.create_study(directions=["minimize", "minimize"])
            >>> audit = AuditCallback(study, ledger=":memory:", region="FR")
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
        self.trials.begin(trial._trial_id, trial_key=self._key(study, trial), number=trial.number, run=self._runs.run(study),
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
        fields = self._fields(study, trial, state, values)
        record = self.trials.finish(trial._trial_id, **fields)
        self.forecaster.observe(record)
        if record is not None:
            write_figures(study, trial._trial_id, record, self.model, self.constraint, attributes=self.attributes)
        elif not self.trials.recorded(trial._trial_id) and trial.datetime_start is not None:
            warn_late(self, trial)  # began before the callback attached: a failure no callback will see
            self.trials.record_past(trial._trial_id, trial.datetime_start.timestamp(), time.time(), **fields)

    def _key(self, study: optuna.Study, trial: FrozenTrial) -> str:
        """The trial's key in the sweep: study, run and number, so that a study created anew
        under the same name keeps its trials beside the earlier run's."""
        return fit_name(f"{study.study_name}/{self._runs.run(study)}/{trial.number}")  # Optuna allows names the ledger's columns do not

    def _fields(self, study: optuna.Study, trial: FrozenTrial, state: OptunaState, values: Sequence[float] | None) -> dict[str, Any]:
        stopped = trial._trial_id in self._stopped_by_budget
        refused = ["refused-by-budget"] if trial._trial_id in self._refused else []  # never ran: no params, ~0 J
        return {"trial_key": self._key(study, trial), "name": None, "state": _STATES.get(state, TrialState.FAILED),
                "params": dict(trial.params), "objective": list(values) if values is not None else None,
                "number": trial.number, "run": self._runs.run(study), "stopped_by_budget": stopped,
                "flags": (["stopped-by-budget"] if stopped else []) + refused}

    # -- after each trial ------------------------------------------------------------------------

    @never_raise
    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.attach(study)
        trials = self.trials
        if trials is None:
            return
        if not trials.recorded(trial._trial_id) and trial.state in _STATES and trial.datetime_start and trial.datetime_complete:
            # started before the callback was attached: measured from the meter's idle energy
            warn_late(self, trial)
            trials.record_past(trial._trial_id, trial.datetime_start.timestamp(), trial.datetime_complete.timestamp(),
                               **self._fields(study, trial, trial.state, trial.values))
        decision = None
        if self.budget is not None:
            self.keeper.open(self.ledger, self.sweep)  # the ledger may have opened late, after a fault
            decision = self.keeper.decide(trials.pending_usage(), after=f"trial {trial.number}", holder=self._holder)
            if decision is not None and decision.action.stops:
                study.stop()
        self.forecaster.after(trial.number + 1, lambda: idle_kwh(trials), decision)

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
        """Flush, then stop recording, for a search that is over (else done at exit). Held-back
        trials stay in the spool file for the next process that opens the ledger.

        Example:
            >>> audit = AuditCallback(ledger=":memory:")
            >>> audit.close()
        """
        atexit.unregister(self.flush)
        self.meter.release_idle(self)  # first: the idle row written by flush is then final
        self.flush()
        if self.trials is not None:
            atexit.unregister(self.trials.recorder.close)
            self.trials.recorder.close()
