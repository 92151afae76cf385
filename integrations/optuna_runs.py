"""Which run of a study a trial belongs to.

Every run of a search is part of its development footprint: a study created anew under the same
name (in memory, in another process, or deleted and created again in its storage) starts its
trial numbers at 0 again, and its trials must sit beside the earlier run's in the ledger, not
replace them. A run is named by what stays the same while a study is continued (by another
process, or resumed in another session) and differs for a study created anew: its storage's
study id and its first trial.
"""

from __future__ import annotations

import hashlib
import os
import socket
from typing import Any

import optuna

UNNAMED = "0" * 8  # a run whose first trial has not started yet (enqueued): named at its next trial


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


class RunNames:
    """:func:`run_of` for each study a callback watches, asked of its storage once.

    Example:
        >>> study = optuna.create_study()
        >>> _ = study.ask()
        >>> names = RunNames()
        >>> names.run(study) == run_of(study)
        True
    """

    def __init__(self) -> None:
        self._runs: dict[tuple[int, int], tuple[Any, str]] = {}  # (storage, study id) -> storage, run

    def run(self, study: optuna.Study) -> str:
        """The run ``study`` is; :data:`UNNAMED` while its first trial has not started."""
        cache_key = (id(study._storage), study._study_id)
        cached = self._runs.get(cache_key)
        if cached is not None and cached[0] is study._storage:
            return cached[1]
        run = run_of(study)
        if run is None:
            return UNNAMED
        self._runs[cache_key] = (study._storage, run)
        return run
