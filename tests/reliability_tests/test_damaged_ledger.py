"""A damaged SQLite ledger (bits flipped, truncated, its -wal and -shm deleted under a running
search): every command answers in one clear line or with figures it can vouch for, a row that
does not read is named and left out, `audit doctor` finds the damage, and nothing is lost to a
deleted write-ahead log."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from auditor.integrations.optuna import AuditCallback

import auditor.ledger.checks as checks
from auditor.ledger import Ledger

optuna.logging.set_verbosity(optuna.logging.WARNING)
COMMANDS = [["report", "--format", "json"], ["report"], ["sweeps"], ["trials", "alpha", "--format", "json"], ["doctor"]]
SAID = ("damaged", "does not read", "do not read", "read without", "left out")


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two audited Optuna searches of 6 trials, checkpointed into one file."""
    path = tmp_path / "ledger.db"
    monkeypatch.setenv("AUDITOR_SIMULATE_GPUS", "1x200")  # (a meter made earlier in the process may have none)
    for name in ("alpha", "beta"):
        study = optuna.create_study(study_name=name)
        audit = AuditCallback(ledger=str(path), budget="1 kWh", n_trials=6).attach(study)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=6, callbacks=[audit])
        audit.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def test_a_changed_figure_is_named_and_left_out_of_every_format(
    ledger: Path, audit: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    before = json.loads(audit("--ledger", str(ledger), "report", "--format", "json").out)
    with sqlite3.connect(ledger) as conn:  # one trial's GPU time, as a flipped low bit leaves it: a plausible number
        row, key, seconds = conn.execute("SELECT id, trial_key, gpu_seconds FROM auditor_trials WHERE state = 'complete' "
                                         "ORDER BY id LIMIT 1").fetchone()
        conn.execute("UPDATE auditor_trials SET gpu_seconds = ? WHERE id = ?", (seconds * 1.0001 + 0.5, row))
    result = audit("--ledger", str(ledger), "report", "--format", "json")
    assert result.code == 0
    said = result.err + caplog.text  # (pytest's log capture takes what a user sees on stderr)
    assert f"row {row} (trial {key}" in said and "left out of every figure" in said
    assert said.count("left out of every figure") == 1
    after = json.loads(result.out)["totals"]
    assert after["trials"] == before["totals"]["trials"] - 1  # left out, not reported with a wrong figure
    assert after["gpu_hours"] == pytest.approx(before["totals"]["gpu_hours"] - seconds / 3600, abs=1e-12)  # without it
    with Ledger.open(ledger) as store:
        assert key not in {t.trial_key for t in store.trials()}
    doctor = audit("--ledger", str(ledger), "doctor")
    assert doctor.code == 1 and f"damaged row {row}" in doctor.out


@pytest.mark.parametrize("sql, what", [
    ("UPDATE auditor_trials SET devices = '[{\"mod' WHERE id = 2", "a JSON column cut short"),
    ("UPDATE auditor_trials SET energy_j = 'x1.5' WHERE id = 3", "a number stored as text"),
    ("UPDATE auditor_trials SET cpu_energy_j = cpu_energy_j * 2 + 1 WHERE id = 4", "an energy that is not its total's part"),
    ("UPDATE auditor_trials SET checksum = NULL, energy_j = 1e300 WHERE id = 5", "out of range, in a row of an older schema"),
])
def test_a_row_that_does_not_read_never_stops_a_command(ledger: Path, audit: Callable[..., Any], sql: str, what: str) -> None:
    """Before: JSONDecodeError and TypeError from `audit report`."""
    with sqlite3.connect(ledger) as conn:
        conn.execute(sql)
    for command in COMMANDS[:4]:
        result = audit("--ledger", str(ledger), *command)
        assert result.code == 0, (what, command, result.err)
        assert "unexpected" not in result.err
    assert json.loads(audit("--ledger", str(ledger), "report", "--format", "json").out)["totals"]["trials"] == 11, what


def test_text_that_is_not_utf8_is_a_damaged_row_not_a_lost_query(
    ledger: Path, audit: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Before: `Could not decode to UTF-8 column 'params'` refused the whole report."""
    with sqlite3.connect(ledger) as conn:
        conn.execute("UPDATE auditor_trials SET params = CAST(X'7B2278223A20C3287D' AS TEXT) WHERE id = 2")
    result = audit("--ledger", str(ledger), "trials", "alpha", "--format", "json")
    assert result.code == 0 and "trial" in caplog.text and "does not read" in caplog.text
    assert len(json.loads(result.out)) == 5


@pytest.mark.slow
def test_random_damage_gives_a_clear_line_or_figures_it_can_vouch_for(
    ledger: Path, tmp_path: Path, audit: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Bits flipped and files cut at random: no command raises, and no figure differs from the
    sound ledger's without a line saying the file is damaged (before: 76 of 1,080 commands
    raised, 35 differed in silence)."""
    sound = {tuple(c): audit("--ledger", str(ledger), *c).out for c in COMMANDS}
    size, rng = ledger.stat().st_size, random.Random(20261203)
    outcomes: dict[str, int] = {}
    for case in range(24):
        copy = tmp_path / f"damaged-{case}.db"
        data = bytearray(ledger.read_bytes())
        if case % 2:
            data = data[: rng.randrange(100, size)]
        else:
            for _ in range(rng.randrange(1, 6)):
                data[rng.randrange(100, size)] ^= 1 << rng.randrange(8)
        copy.write_bytes(bytes(data))
        for command in COMMANDS:
            checks._said.clear()  # each command a new process, as a user runs it
            caplog.clear()
            result = audit("--ledger", str(copy), *command)
            assert "unexpected" not in result.err and "Traceback" not in result.err, (case, command, result.err)
            errors = [line for line in result.err.splitlines() if line.startswith("error:")]
            assert len(errors) <= 1
            same = result.out.replace(str(copy), str(ledger)) == sound[tuple(command)]
            kind = "refused" if result.code else "same" if same else "different, said"
            if kind == "different, said":
                assert any(word in result.err + result.out + caplog.text for word in SAID), (case, command, result.err)
            outcomes[kind] = outcomes.get(kind, 0) + 1
    print(outcomes)
    assert outcomes.get("same", 0) > 0


def test_wal_and_shm_deleted_under_a_running_search_lose_no_trial(tmp_path: Path) -> None:
    """Before: 46 of 300 trials were gone once the search ended, and nothing said so."""
    path = tmp_path / "ledger.db"
    study = optuna.create_study(study_name="w")
    audit = AuditCallback(ledger=str(path)).attach(study)

    def objective(trial: optuna.Trial) -> float:
        if trial.number == 100:
            for suffix in ("-wal", "-shm"):
                Path(f"{path}{suffix}").unlink()
        return trial.suggest_float("x", 0, 1)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study.optimize(objective, n_trials=300, callbacks=[audit])
        audit.close()
    assert any("-wal and -shm were deleted or replaced" in str(w.message) for w in caught)
    counted = subprocess.run(  # what another process finds
        [sys.executable, "-c", f"from auditor.ledger import Ledger; print(Ledger.open({str(path)!r}).count_trials('w'))"],
        capture_output=True, text=True, timeout=60, check=True)
    assert int(counted.stdout) == 300
