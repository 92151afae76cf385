"""`audit run` as a real process around real commands."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from auditor.ledger import Ledger, TrialState

AUDIT = str(Path(sys.executable).parent / "audit")


def audit_run(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AUDIT, "run", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def only_trial(cwd: Path, sweep: str = "runs"):
    with Ledger.open(cwd / ".auditor" / "ledger.db") as store:
        [trial] = store.trials(sweep)
    return trial


def test_exit_code_passes_through_and_failure_is_recorded(clean_environment: Path) -> None:
    result = audit_run(clean_environment, "--sweep", "dbg", "--name", "crash", "--", sys.executable, "-c", "raise SystemExit(3)")
    assert result.returncode == 3
    assert "'crash' failed" in result.stderr
    trial = only_trial(clean_environment, "dbg")
    assert trial.state is TrialState.FAILED and "exit code 3" in trial.flags
    assert trial.params["command"][-1] == "raise SystemExit(3)"


@pytest.mark.slow
def test_children_cpu_time_is_metered(clean_environment: Path) -> None:
    burn = (
        "import subprocess, sys\n"
        "code = 'import time\\nt=time.process_time()+0.6\\nwhile time.process_time()<t: pass'\n"
        "subprocess.run([sys.executable, '-c', code], check=True)\n"
    )
    result = audit_run(clean_environment, "--final", "--", sys.executable, "-c", burn)
    assert result.returncode == 0, result.stderr
    trial = only_trial(clean_environment)
    assert trial.state is TrialState.COMPLETE and trial.is_final
    assert trial.energy["cpu"].method == "estimate-tdp"
    assert trial.energy["cpu"].joules >= 0.6 * 1.0  # at least 0.6 CPU-seconds at >= 1 W per CPU


def test_command_killed_by_a_signal_is_recorded_as_stopped(clean_environment: Path) -> None:
    result = audit_run(clean_environment, "--", "sh", "-c", "kill -TERM $$")
    assert result.returncode == 128 + signal.SIGTERM
    trial = only_trial(clean_environment)
    assert trial.state is TrialState.STOPPED and "signal: SIGTERM" in trial.flags


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_sent_to_audit_reach_the_command(clean_environment: Path, sig: signal.Signals) -> None:
    process = subprocess.Popen(
        [AUDIT, "run", "--", sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
        cwd=clean_environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    process.send_signal(sig)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 128 + sig
    trial = only_trial(clean_environment)
    assert trial.state is TrialState.STOPPED and f"signal: {sig.name}" in trial.flags
    assert "stopped" in err


def test_missing_command_is_one_line_and_nothing_recorded(clean_environment: Path) -> None:
    result = audit_run(clean_environment, "--", "no-such-command-here")
    assert result.returncode == 1
    assert result.stderr == "error: command not found: no-such-command-here\n"
    with Ledger.open(clean_environment / ".auditor" / "ledger.db") as store:
        assert store.count_trials() == 0


def test_bad_ledger_stops_before_running(clean_environment: Path) -> None:
    marker = clean_environment / "ran"
    result = audit_run(clean_environment, "--ledger", "oracle://x/y", "--", "touch", str(marker))
    assert result.returncode == 1 and "not supported" in result.stderr
    assert not marker.exists()


def _short_series(path: Path, base: int, cleanest: int) -> None:
    from datetime import UTC, datetime

    rows = [f"{datetime.fromtimestamp(base + s, UTC).isoformat()},{50 if s == cleanest else 500}" for s in range(-5, 30)]
    path.write_text("timestamp,intensity_g_per_kwh\n" + "\n".join(rows) + "\n")


def test_when_cleaner_waits_for_the_lowest_intensity_within_the_deadline(clean_environment: Path) -> None:
    base = int(time.time())
    _short_series(clean_environment / "grid.csv", base, cleanest=3)  # 1-second steps: cleanest 3 s from base
    result = audit_run(clean_environment, "--when-cleaner", "1 min", "--intensity-series", "grid.csv", "--", "true")
    assert result.returncode == 0, result.stderr
    assert "the grid is cleanest within 1 minute at " in result.stderr and "(50 g/kWh, 500 g/kWh now): starting in" in result.stderr
    trial = only_trial(clean_environment)
    assert trial.start_time >= base + 3  # started no earlier than the cleanest moment


def test_when_cleaner_needs_a_series_and_a_duration(clean_environment: Path) -> None:
    result = audit_run(clean_environment, "--when-cleaner", "12h", "--", "true")
    assert result.returncode != 0 and "needs the grid's intensity over time" in result.stderr
    _short_series(clean_environment / "grid.csv", int(time.time()), cleanest=1)
    result = audit_run(clean_environment, "--when-cleaner", "soon", "--intensity-series", "grid.csv", "--", "true")
    assert result.returncode != 0 and "cannot read the duration 'soon'" in result.stderr and "Traceback" not in result.stderr
    late = clean_environment / "late.csv"
    late.write_text("timestamp,intensity_g_per_kwh\n2020-01-01T00:00Z,100\n")
    result = audit_run(clean_environment, "--when-cleaner", "2h", "--intensity-series", str(late), "--", "true")
    assert result.returncode != 0 and "has no value for" in result.stderr and len(result.stderr.strip().splitlines()) == 1
