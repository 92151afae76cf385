"""An Optuna search that a test kills with SIGKILL mid-trial, then resumes.

Usage: python optuna_killed.py STORAGE_URL LEDGER MARKER_DIR N_TRIALS [PARAM_BYTES]
Writes MARKER_DIR/started-K when trial K is half-way through (every trial K). PARAM_BYTES: a
parameter of that many bytes a trial (so that each needs new room in the ledger's file).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("AUDITOR_SIMULATE_GPUS", "1x200")

import optuna  # noqa: E402
from auditor.integrations.optuna import AuditCallback  # noqa: E402


def main() -> None:
    storage, ledger, markers, trials = sys.argv[1:5]
    bulk = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="killed", storage=storage, load_if_exists=True)
    audit = AuditCallback(ledger=ledger).attach(study)

    def objective(trial: optuna.Trial) -> float:
        time.sleep(0.5)
        Path(markers, f"started-{trial.number}").touch()
        time.sleep(0.5)
        if bulk:
            trial.suggest_categorical(f"notes{trial.number}", ["n" * bulk])
        return trial.suggest_float("x", 0, 1)

    study.optimize(objective, n_trials=int(trials), callbacks=[audit])
    audit.flush()


if __name__ == "__main__":
    main()
