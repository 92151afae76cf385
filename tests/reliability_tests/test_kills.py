"""SIGKILL mid-trial: the ledger opens cleanly, every finished trial is there, the running one
is there with its energy up to its last heartbeat, and a resumed search continues the sweep."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from auditor.ledger import Ledger, TrialState
from auditor.model.carbon import CarbonModel
from auditor.report.build import build_report

HERE = Path(__file__).resolve().parent


@pytest.mark.slow
def test_sigkill_of_an_optuna_search_mid_trial(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    ledger = str(tmp_path / "ledger.db")
    script = [sys.executable, str(HERE / "optuna_killed.py"), storage, ledger, str(tmp_path)]
    process = subprocess.Popen([*script, "50"])
    marker = tmp_path / "started-4"
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), "trial 4 never started"
    killed_at = time.time()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    finished = {t.number for t in optuna.load_study(study_name="killed", storage=storage).trials if t.state.is_finished()}
    assert finished == {0, 1, 2, 3}
    with Ledger.open(ledger) as store:
        trials = {t.number: t for t in store.trials("killed")}
    assert {n for n, t in trials.items() if t.state is TrialState.COMPLETE} == finished  # every finished trial
    running = trials[4]
    assert running.state is TrialState.RUNNING and "heartbeat" in running.flags
    assert killed_at - running.end_time <= 10  # energy up to a heartbeat at most 10 s old
    assert all(trials[n].energy["gpu"].joules > 0 for n in finished)

    subprocess.run([*script, "2"], check=True, timeout=120)  # resumed: the same sweep goes on
    with Ledger.open(ledger) as store:
        after = {t.number: t for t in store.trials("killed")}
        report = build_report(store, CarbonModel())
    assert {5, 6} <= set(after) and after[5].state is TrialState.COMPLETE
    assert [s["name"] for s in report["sweeps"]] == ["killed"]


@pytest.mark.slow
def test_sigkill_of_audit_run_leaves_the_command_recorded(tmp_path: Path) -> None:
    import os

    ledger = str(tmp_path / "ledger.db")
    audit = str(Path(sys.executable).parent / "audit")
    process = subprocess.Popen(
        [audit, "run", "--ledger", ledger, "--name", "long", "--", sys.executable, "-c", "import time; time.sleep(60)"],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        found = []
        while not found and time.monotonic() < deadline:
            time.sleep(0.2)
            if Path(ledger).exists():
                with Ledger.open(ledger) as store:
                    found = store.trials("runs") if store.get_sweep("runs") else []
        time.sleep(0.5)
        killed_at = time.time()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the orphaned command too
    with Ledger.open(ledger) as store:
        [trial] = store.trials("runs")
    assert trial.name == "long" and trial.state is TrialState.RUNNING and "heartbeat" in trial.flags
    assert killed_at - trial.end_time <= 10


def test_a_ledger_locked_mid_search_holds_records_back_and_loses_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3
    import threading

    from auditor.integrations.optuna import AuditCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ledger = str(tmp_path / "ledger.db")
    monkeypatch.setenv("AUDITOR_LEDGER_TIMEOUT", "0.3")
    audit = AuditCallback(ledger=ledger)
    study = optuna.create_study(study_name="locked")
    audit.attach(study)

    holder = sqlite3.connect(ledger, isolation_level=None, check_same_thread=False)

    def lock_for(seconds: float) -> None:
        holder.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        holder.execute("ROLLBACK")

    def objective(trial: optuna.Trial) -> float:
        if trial.number == 2:
            threading.Thread(target=lock_for, args=(2.0,)).start()
        time.sleep(0.1)
        return trial.suggest_float("x", 0, 1)

    with pytest.warns(RuntimeWarning, match="held back, ledger .* not written: ledger .* stayed locked"):
        study.optimize(objective, n_trials=20, callbacks=[audit])
        time.sleep(2.0)  # the lock goes away
        audit.flush()
    holder.close()
    with Ledger.open(ledger) as store:
        assert sorted(t.number for t in store.trials("locked")) == list(range(20))


@pytest.mark.slow
def test_sigkill_of_a_ray_tune_search_mid_trial(tmp_path: Path) -> None:
    """The whole driver, with its own Ray, killed half-way through the third trial."""
    import os
    import shutil
    import tempfile

    pytest.importorskip("ray", reason="ray[tune] is in the dev extra")
    ledger, markers = str(tmp_path / "ledger.db"), tmp_path / "markers"
    markers.mkdir()
    temp_dir = tempfile.mkdtemp(prefix="rk", dir="/tmp")  # short: Ray's socket paths must stay under 107 bytes
    script = [sys.executable, str(HERE / "ray_killed.py"), ledger, str(tmp_path / "ray"), str(markers), temp_dir]
    process = subprocess.Popen([*script, "start"], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not (markers / "started-2").exists():
            assert time.monotonic() < deadline and process.poll() is None, "trial 2 never started"
            time.sleep(0.02)
        killed_at = time.time()
        os.killpg(process.pid, signal.SIGKILL)  # the driver and the Ray it started
        process.wait(timeout=30)
    finally:
        subprocess.run(["pkill", "-9", "-f", temp_dir], check=False)  # Ray's daemons, wherever they went
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)

    with Ledger.open(ledger) as store:  # the ledger opens cleanly
        [sweep] = store.sweeps()
        trials = {t.params["i"]: t for t in store.trials(sweep.name)}
    assert {i for i, t in trials.items() if t.state is TrialState.COMPLETE} == {0, 1}  # every finished trial
    running = trials[2]
    assert running.state is TrialState.RUNNING and "heartbeat" in running.flags
    assert killed_at - running.end_time <= 10  # up to a heartbeat at most 10 s old

    resumed = subprocess.run([*script, "resume"], start_new_session=True, capture_output=True, text=True, timeout=300)
    subprocess.run(["pkill", "-9", "-f", temp_dir], check=False)
    shutil.rmtree(temp_dir, ignore_errors=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    with Ledger.open(ledger) as store:  # the same sweep goes on
        [after] = store.sweeps()
        states = {t.params["i"]: t.state for t in store.trials(after.name)}
    assert after.name == sweep.name and states == {i: TrialState.COMPLETE for i in range(4)}
