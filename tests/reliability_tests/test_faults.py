"""Real faults under a real search: the ledger's disk full, a read-only ledger, PostgreSQL
restarted mid-search. The search goes on, a warning says why, the trials the ledger refused are
kept in a spool file and written once it answers; nothing finished is lost."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from auditor.integrations.optuna import AuditCallback
from sqlalchemy import create_engine, text

from auditor.ledger import Ledger, TrialRecord, TrialState
from auditor.ledger.spool import held_back
from tests.reliability_tests.conftest import ReadOnlyView, SmallDisk

HERE = Path(__file__).resolve().parent
KILLED = HERE / "optuna_killed.py"


def _wait_for(path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def _numbers(ledger: str, sweep: str, state: TrialState = TrialState.COMPLETE) -> set[int]:
    with Ledger.open(ledger) as store:
        return {t.number for t in store.trials(sweep) if t.state is state}  # type: ignore[misc]


def test_a_full_disk_mid_search_holds_trials_back_and_writes_them_once_freed(small_disk: SmallDisk) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ledger = str(small_disk.path / "ledger.db")
    audit = AuditCallback(ledger=ledger)
    study = optuna.create_study(study_name="full-disk")
    audit.attach(study)
    seen: dict[str, object] = {}

    def objective(trial: optuna.Trial) -> float:
        if trial.number == 3:
            small_disk.fill()
        if trial.number == 12:  # the disk is still full: what is in the ledger and what is held
            time.sleep(0.3)
            seen["held"] = held_back(Ledger.location_of(ledger), include_live=True)
            seen["in_ledger"] = _numbers(ledger, "full-disk")
            small_disk.free()
        time.sleep(0.05)
        # 100 KB of params a trial: each needs new pages (the ledger's log, checkpointed every few seconds,
        # is reused in place, so small trials would still fit on a full disk)
        trial.suggest_categorical(f"notes{trial.number}", ["n" * 100_000])
        return trial.suggest_float("x", 0, 1)

    with pytest.warns(RuntimeWarning, match="held back, ledger .* not written: ledger .*: the disk is full"):
        study.optimize(objective, n_trials=20, callbacks=[audit])  # the search goes on
        audit.close()
    assert len(study.trials) == 20
    assert seen["in_ledger"] and max(seen["in_ledger"]) < 11  # type: ignore[arg-type]  # the ledger stayed readable
    assert seen["held"] >= 8  # type: ignore[operator]  # trials 3..11, kept on another disk meanwhile
    assert _numbers(ledger, "full-disk") == set(range(20))  # every one written once there was room
    assert held_back(Ledger.location_of(ledger), include_live=True) == 0  # and the spool file is gone


@pytest.mark.slow
def test_a_search_killed_while_the_disk_is_full_loses_no_finished_trial(
    small_disk: SmallDisk, tmp_path: Path, audit: Callable[..., object]
) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    ledger = str(small_disk.path / "ledger.db")
    markers = tmp_path / "markers"
    markers.mkdir()
    process = subprocess.Popen([sys.executable, str(KILLED), storage, ledger, str(markers), "50", "100000"])
    try:
        _wait_for(markers / "started-2")
        small_disk.fill()
        _wait_for(markers / "started-8")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finished = {t.number for t in optuna.load_study(study_name="killed", storage=storage).trials if t.state.is_finished()}
    assert finished == set(range(8))
    written = _numbers(ledger, "killed")  # the ledger opens cleanly, with what it took before the disk filled
    assert {0, 1} <= written < finished
    assert held_back(Ledger.location_of(ledger)) >= len(finished - written)  # the rest waits in the dead process's spool

    small_disk.free()
    result = audit("--ledger", ledger, "report", "--format", "json")  # the next command writes them
    assert result.code == 0, result.err  # type: ignore[attr-defined]
    assert "held back by an earlier search now written" in result.err  # type: ignore[attr-defined]
    assert json.loads(result.out)["held_back_trials"] == 0  # type: ignore[attr-defined]
    assert _numbers(ledger, "killed") == finished  # every finished trial
    assert held_back(Ledger.location_of(ledger)) == 0


@pytest.mark.slow
def test_a_read_only_ledger_is_reported_and_gets_the_held_back_trials_once_writable(
    read_only_view: tuple[Path, ReadOnlyView], tmp_path: Path, audit: Callable[..., object]
) -> None:
    source, view = read_only_view
    with Ledger.open(source / "ledger.db") as store:
        store.ensure_sweep("earlier", framework="run")
        store.record_trial(TrialRecord(sweep="earlier", trial_key="1", state="complete", start_time=0.0, end_time=60.0))
    ledger = str(view.path / "ledger.db")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    search = subprocess.run([sys.executable, str(KILLED), storage, ledger, str(tmp_path), "4"],
                            capture_output=True, text=True, timeout=120)
    assert search.returncode == 0, search.stderr  # the search went on
    assert "held back" in search.stderr and "readonly" in search.stderr  # and said why

    report = audit("--ledger", ledger, "report", "--format", "json")
    assert report.code == 0, report.err  # type: ignore[attr-defined]  # a read-only ledger still reports
    data = json.loads(report.out)  # type: ignore[attr-defined]
    assert [s["name"] for s in data["sweeps"]] == ["earlier"]
    assert data["held_back_trials"] >= 4  # and says what it is missing
    assert "not in this ledger yet" in report.err  # type: ignore[attr-defined]

    view.make_writable()
    report = audit("--ledger", ledger, "report", "--format", "json")
    assert json.loads(report.out)["held_back_trials"] == 0  # type: ignore[attr-defined]
    assert _numbers(ledger, "killed") == {0, 1, 2, 3}


@pytest.mark.slow
def test_postgresql_restarted_mid_search_loses_no_trial(postgres_url: str, restart_postgresql: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def started_at() -> object:
        engine = create_engine(postgres_url)
        with engine.connect() as conn:
            value = conn.execute(text("SELECT pg_postmaster_start_time()")).scalar()
        engine.dispose()
        return value

    before = started_at()
    audit = AuditCallback(ledger=postgres_url, budget="1 kWh")  # the budget is checked through the restart too
    study = optuna.create_study(study_name="pg-restart")
    audit.attach(study)
    restart = threading.Thread(target=subprocess.run, args=(restart_postgresql,), kwargs={"shell": True, "check": True})

    def objective(trial: optuna.Trial) -> float:
        if trial.number == 5:
            restart.start()
        time.sleep(0.1)
        return trial.suggest_float("x", 0, 1)

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        study.optimize(objective, n_trials=40, callbacks=[audit])
        restart.join(timeout=60)
        deadline = time.monotonic() + 30
        while _pending(audit) and time.monotonic() < deadline:
            audit.flush()
            time.sleep(0.5)
    audit.close()
    assert started_at() != before  # the server did restart mid-search
    assert len(study.trials) == 40 and not audit.stopped_by_budget  # the search went on
    assert _numbers(postgres_url, "pg-restart") == set(range(40))  # and no trial was lost


def _pending(audit: AuditCallback) -> int:
    return len(audit.trials.recorder.writer.held) if audit.trials else 0


@pytest.mark.parametrize("fail", ["open", "closed"])
def test_a_budget_fails_open_or_closed_when_the_ledger_cannot_answer(
    fail: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    monkeypatch.setenv("AUDITOR_LEDGER_TIMEOUT", "0.3")
    ledger = str(tmp_path / "ledger.db")
    audit = AuditCallback(ledger=ledger, budget="1 kWh", fail=fail)  # far from spent
    study = optuna.create_study(study_name=f"fail-{fail}")
    audit.attach(study)
    holder = sqlite3.connect(ledger, isolation_level=None, check_same_thread=False)

    def objective(trial: optuna.Trial) -> float:
        if trial.number == 5:
            holder.execute("BEGIN EXCLUSIVE")  # another process holds the ledger from now on
        time.sleep(0.05)
        return trial.suggest_float("x", 0, 1)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the held-back records' warning
        study.optimize(objective, n_trials=20, callbacks=[audit])
        holder.execute("ROLLBACK")
        audit.close()
    holder.close()
    if fail == "open":
        assert len(study.trials) == 20 and not audit.stopped_by_budget
    else:
        assert audit.stopped_by_budget and 5 < len(study.trials) <= 7  # stopped at the first check it could not make
    assert _numbers(ledger, f"fail-{fail}") == {t.number for t in study.trials}  # and nothing lost either way


def test_audit_run_whose_command_fills_the_ledgers_disk_keeps_its_record(small_disk: SmallDisk, audit: Callable[..., object]) -> None:
    ledger = str(small_disk.path / "ledger.db")
    fill = (f"import os\nfd = os.open({str(small_disk.filler)!r}, os.O_WRONLY | os.O_CREAT)\n"
            "try:\n    while True: os.write(fd, bytes(4096))\nexcept OSError: pass")
    result = audit("--ledger", ledger, "run", "--name", "filler", "--", sys.executable, "-c", fill)
    assert result.code == 0  # type: ignore[attr-defined]  # the command's own exit code
    assert "held back (ledger" in result.err and "the disk is full" in result.err  # type: ignore[attr-defined]
    small_disk.free()
    listing = audit("--ledger", ledger, "trials", "runs", "--format", "json")
    assert [t["name"] for t in json.loads(listing.out)] == ["filler"]  # type: ignore[attr-defined]


def test_with_the_spool_on_the_same_full_disk_trials_wait_in_memory(small_disk: SmallDisk, caplog: pytest.LogCaptureFixture) -> None:
    from auditor.ledger.writer import LedgerWriter

    writer = LedgerWriter(str(small_disk.path / "ledger.db"), "s", "run", spool_dir=str(small_disk.path / "spool"))
    small_disk.fill()
    records = [TrialRecord(sweep="s", trial_key=str(i), state="complete", start_time=0.0, params={"pad": "x" * 5000})
               for i in range(50)]
    with pytest.warns(RuntimeWarning, match="the disk is full"):
        assert writer.write(records) is False
    assert "held-back trials are in memory only" in caplog.text and len(writer.held) == 50
    small_disk.free()
    assert writer.write() is True and writer.ledger.count_trials("s") == 50  # type: ignore[union-attr]
