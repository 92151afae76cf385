"""A finished Optuna trial's figures written into the study: its ledger record's numbers as user
attributes (what optuna-dashboard sorts and plots) and its cost as the constraint ``auditor``.
"""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.storages import RDBStorage

try:  # the RDB storage's own steps, for one transaction a trial (see write_attrs)
    from optuna.storages._rdb import models as _rdb_models
    from optuna.storages._rdb.storage import _create_scoped_session
except ImportError:  # an Optuna that moved them: one public call an attribute
    _rdb_models = _create_scoped_session = None  # type: ignore[assignment]

from auditor.errors import InvalidInputError
from auditor.ledger import TrialRecord
from auditor.model.carbon import CarbonModel
from auditor.search.constraint import CONSTRAINT_KEY, CostConstraint
from auditor.search.figures import user_attrs

logger = logging.getLogger("auditor")

CONSTRAINT_ATTR = f"constraints:{CONSTRAINT_KEY}"  # where Optuna 5 keeps trial.constraints[CONSTRAINT_KEY]
LATE_WARNING = (
    "trial %d ran before the callback saw the study: its energy is taken from the meter's "
    "idle energy afterwards (flagged after-the-fact, no user attributes). Give the callback the "
    "study to watch every trial live: AuditCallback(study, ...)"
)


def warn_late(callback: Any, trial: optuna.trial.FrozenTrial) -> None:
    """Say once per callback that a trial began before it saw the study (:data:`LATE_WARNING`)."""
    if not callback._warned_late:
        callback._warned_late = True
        logger.warning(LATE_WARNING, trial.number)


def require_constraints() -> None:
    """Raise unless this Optuna reads a trial's constraints without a ``constraints_func``
    (Optuna >= 5, ``Trial.set_constraint``): on Optuna 4, ``constraint=`` would do nothing.

    Raises:
        InvalidInputError: Optuna is older than 5.
    """
    if not hasattr(optuna.trial.Trial, "set_constraint"):
        raise InvalidInputError(
            f"constraint= needs Optuna 5 or newer, which reads a trial's constraints without a "
            f"constraints_func (installed: optuna {optuna.__version__}): pip install -U 'optuna>=5'"
        )


def write_figures(study: optuna.Study, trial_id: int, record: TrialRecord, model: CarbonModel,
                  constraint: CostConstraint | None, attributes: bool = True) -> None:
    """Write ``record``'s figures into the running trial ``trial_id`` (numeric user attributes,
    unless ``attributes`` is False, and the constraint when one is set). A storage that refuses leaves the ledger's record as
    the figure of truth, with a debug line.

    The constraint is written where ``Trial.set_constraint`` writes it, through the storage:
    building an ``optuna.Trial`` for a trial that is ending would run the samplers'
    ``before_trial`` again.
    """
    try:
        system = {}
        if constraint is not None:
            footprint = model.footprint(record.energy_kwh, record.gpu_hours, (record.start_time, record.end_time))
            system[CONSTRAINT_ATTR] = constraint.value(footprint)
        write_attrs(study._storage, trial_id, user_attrs(record, model) if attributes else {}, system)
    except Exception as exc:  # noqa: BLE001 - some storages refuse; the ledger still has it
        logger.debug("figures not written into trial %s: %s", trial_id, exc)


def write_attrs(storage: Any, trial_id: int, user: dict[str, Any], system: dict[str, Any]) -> bool:
    """Write a trial's user and system attributes: on an RDB storage (SQLite, PostgreSQL,
    MySQL) in one transaction, one commit for all of them, else one storage call each (the
    in-memory and journal storages take one attribute a call). Returns True for the one
    transaction.

    Optuna has no public call for several attributes; the transaction uses the RDB storage's
    own per-attribute step (``_set_trial_attr_without_commit``, the body of its public
    ``set_trial_user_attr``) inside its own session. A version without it gets the public calls,
    and ``tests/integrations_tests/test_optuna_storages.py`` fails that day.
    """
    backend = getattr(storage, "_backend", storage)  # the cache Optuna wraps RDB storages in forwards writes
    write = getattr(backend, "_set_trial_attr_without_commit", None) if isinstance(backend, RDBStorage) else None
    if write is not None and _create_scoped_session is not None and (user or system):
        with _create_scoped_session(backend.scoped_session, True) as session:
            for key, value in user.items():
                write(session, _rdb_models.TrialUserAttributeModel, trial_id, key, value)
            for key, value in system.items():
                write(session, _rdb_models.TrialSystemAttributeModel, trial_id, key, value)
        return True
    for key, value in user.items():
        storage.set_trial_user_attr(trial_id, key, value)
    for key, value in system.items():
        storage.set_trial_system_attr(trial_id, key, value)
    return False
