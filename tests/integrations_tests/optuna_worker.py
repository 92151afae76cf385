"""One worker process of a search shared through a JournalStorage (JournalFileBackend) and one ledger.

Usage: python optuna_worker.py STORAGE_FILE LEDGER STUDY BUDGET TRIAL_CPU_SECONDS [RESERVE=1]
"""

from __future__ import annotations

import sys
import time

import optuna
from auditor.integrations.optuna import AuditCallback
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend


def burn(seconds: float) -> None:
    deadline = time.process_time() + seconds
    while time.process_time() < deadline:
        pass


def main() -> None:
    storage_file, ledger, study_name, budget, cpu_seconds = sys.argv[1:6]
    reserve = (sys.argv[6] if len(sys.argv) > 6 else "1") == "1"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(storage_file))
    study = optuna.create_study(study_name=study_name, storage=storage, load_if_exists=True)
    audit = AuditCallback(ledger=ledger, budget=budget, region="DE", reserve=reserve).attach(study)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -1, 1)
        burn(float(cpu_seconds))
        return x * x

    study.optimize(objective, n_trials=200, callbacks=[audit])
    audit.flush()
    print(f"stopped_by_budget={audit.stopped_by_budget}", flush=True)


if __name__ == "__main__":
    main()
