"""A ledger written by an older schema opens, upgraded to this one, with nothing lost: schema 1
(before runs) on SQLite, schema 2 (names in text columns) on MariaDB."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import create_engine, text

from auditor.ledger import Ledger, TrialRecord, schema


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
        assert ledger.schema_version == schema.SCHEMA_VERSION == 4
        trials = ledger.trials("old")
        assert [(t.trial_key, t.run) for t in trials] == [("old/0", None), ("old/1", None), ("old/2", None)]
        assert ledger.runs("old") == [None]
        ledger.record_trial(TrialRecord(sweep="old", trial_key="old/ab12cd34/0", number=0, run="ab12cd34",
                                        state="complete", start_time=10.0, end_time=11.0))
        assert ledger.runs("old") == [None, "ab12cd34"]
        assert ledger.count_trials("old") == 4
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM auditor_meta WHERE key = 'schema_version'").fetchone() == ("4",)


def test_a_schema_2_ledger_on_mariadb_compares_names_exactly_after_the_upgrade(mariadb_url: str) -> None:
    with Ledger.open(mariadb_url) as ledger:
        ledger.ensure_sweep("lr", framework="optuna")
        ledger.record_trial(TrialRecord(sweep="lr", trial_key="lr/0", number=0, state="complete", start_time=0.0, end_time=1.0))
    engine = create_engine(mariadb_url)
    with engine.begin() as conn:  # as schema 2 left it: names in the server's default (case-blind) collation
        conn.execute(text("ALTER TABLE auditor_sweeps MODIFY name VARCHAR(255) NOT NULL"))
        conn.execute(text("ALTER TABLE auditor_trials MODIFY trial_key VARCHAR(255) NOT NULL, MODIFY name VARCHAR(255) NULL"))
        conn.execute(text("UPDATE auditor_meta SET value = '2' WHERE `key` = 'schema_version'"))
        assert conn.execute(text("SELECT count(*) FROM auditor_sweeps WHERE name = 'LR '")).scalar() == 1  # the trap
    with Ledger.open(mariadb_url) as ledger:
        assert ledger.schema_version == 4
        assert ledger.get_sweep("LR ") is None and ledger.get_sweep("lr") is not None
        ledger.ensure_sweep("LR ", framework="optuna")
        ledger.record_trial(TrialRecord(sweep="LR ", trial_key="lr/0", number=0, state="complete", start_time=2.0, end_time=3.0))
        assert [s.name for s in ledger.sweeps()] == ["lr", "LR "]
        assert ledger.count_trials("lr") == ledger.count_trials("LR ") == 1
        assert [t.trial_key for t in ledger.trials("lr")] == ["lr/0"]
    engine.dispose()
