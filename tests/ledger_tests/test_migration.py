"""A ledger written by schema 1 (before runs) opens, upgraded to schema 2, with nothing lost."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from auditor.ledger import Ledger, TrialRecord
from auditor.ledger import schema


def _schema_1_ledger(path: Path) -> None:
    with Ledger.open(path) as ledger:
        ledger.ensure_sweep("old", framework="optuna")
        for number in range(3):
            ledger.record_trial(TrialRecord(sweep="old", trial_key=f"old/{number}", number=number, state="complete",
                                            start_time=float(number), end_time=number + 0.5, gpu_seconds=0.5))
    with sqlite3.connect(path) as conn:  # as hpo-auditor 0.1 left it: no run column, version 1
        conn.execute("ALTER TABLE auditor_trials DROP COLUMN run")
        conn.execute("UPDATE auditor_meta SET value = '1' WHERE key = 'schema_version'")


def test_a_schema_1_ledger_is_upgraded_on_open_and_keeps_every_trial(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    _schema_1_ledger(path)
    with Ledger.open(path, create=False) as ledger:  # a command that only reads upgrades it too
        assert ledger.schema_version == schema.SCHEMA_VERSION == 2
        trials = ledger.trials("old")
        assert [(t.trial_key, t.run) for t in trials] == [("old/0", None), ("old/1", None), ("old/2", None)]
        assert ledger.runs("old") == [None]
        ledger.record_trial(TrialRecord(sweep="old", trial_key="old/ab12cd34/0", number=0, run="ab12cd34",
                                        state="complete", start_time=10.0, end_time=11.0))
        assert ledger.runs("old") == [None, "ab12cd34"]
        assert ledger.count_trials("old") == 4
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM auditor_meta WHERE key = 'schema_version'").fetchone() == ("2",)
