"""The Optuna plugin's hooks: the study's own sampler and pruner, wrapped so the callback sees
every trial start and end (even one failing with an exception Optuna never shows to callbacks),
ends trials refused by a spent budget, and prunes running trials once a hard budget is spent.

The callback (:class:`auditor.integrations.optuna.AuditCallback`) installs them; they pass every
other call to the wrapped sampler or pruner.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial
from optuna.trial import TrialState as OptunaState


class AuditSampler(BaseSampler):
    """The study's own sampler, with the callback told when each trial starts and ends."""

    def __init__(self, base: BaseSampler, audit: Any) -> None:
        self._base = base
        self._audit = audit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        if trial._trial_id in self._audit._refused:
            return {}  # every parameter then goes through sample_independent, which ends the trial
        return self._base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]) -> dict[str, Any]:
        return self._base.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, name: str, distribution: Any) -> Any:
        if trial._trial_id in self._audit._refused and study._thread_local.in_optimize_loop:
            raise optuna.TrialPruned("auditor: the budget was spent before this trial started")
        return self._base.sample_independent(study, trial, name, distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._base.before_trial(study, trial)
        self._audit._trial_started(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: OptunaState, values: Sequence[float] | None) -> None:
        self._audit._trial_ended(study, trial, state, values)
        self._base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._base.reseed_rng()


class AuditPruner(BasePruner):
    """The study's own pruner, answering "prune" to every running trial once a hard budget is spent."""

    def __init__(self, base: BasePruner, audit: Any) -> None:
        self._base = base
        self._audit = audit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if self._audit._hard_stop_now():
            self._audit._stopped_by_budget.add(trial._trial_id)
            return True
        return self._base.prune(study, trial)
