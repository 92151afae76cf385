"""`audit run -- COMMAND ARGS...`: meter a whole command and its children into the ledger.

The command's exit code is passed through (128 + N when a signal N killed it). Ctrl-C and
SIGTERM reach the command: a Ctrl-C typed at the terminal reaches it directly (it shares the
terminal's process group), one sent to `audit` alone is forwarded, and so is SIGTERM. A command
that fails is recorded as failed, one killed by a signal as stopped.

``--when-cleaner 12h`` waits, before starting the command, until the grid's intensity is at
its lowest within 12 hours, read from the hourly series (``--intensity-series FILE`` or the
``intensity_series`` setting; offline, no forecast service): the moment chosen is now or a later
series timestamp within the deadline with the lowest intensity in force (the earliest of
equals), and the wait is printed before it begins. Ctrl-C during the wait exits 130 without
running the command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable

import typer

from auditor.cli.common import LEDGER_HELP, settings_with
from auditor.config import carbon_model
from auditor.errors import AuditorError
from auditor.ledger import Ledger, TrialState
from auditor.ledger.writer import LedgerWriter
from auditor.meters import default_sources
from auditor.meters.cpu import ProcessTree
from auditor.meters.sampler import Meter
from auditor.model.series import IntensitySeries, cleanest_start, format_time, parse_duration
from auditor.model.units import JOULES_PER_KWH, Metric, format_duration, format_number, format_quantity
from auditor.search.recorder import HEARTBEAT_S
from auditor.search.records import record_for
from auditor.tracking import command_name

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _wait_forwarding_signals(process: subprocess.Popen[bytes], beat: Callable[[], None]) -> tuple[int, float]:
    """Wait for ``process``, forwarding the signals that `audit` receives to it, and calling
    ``beat`` every tenth of a second.

    Returns its exit code (negative for a signal) and the CPU seconds of it and every
    descendant it waited for.
    """
    while True:
        beat()
        info = signal.sigtimedwait(FORWARDED, 0.1)
        if info is not None:
            from_terminal = info.si_signo == signal.SIGINT and info.si_pid == 0
            if not from_terminal:  # the terminal already sent it to the whole process group
                try:
                    process.send_signal(info.si_signo)
                except ProcessLookupError:
                    pass
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid == process.pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage.ru_utime + usage.ru_stime


def _wait_for_cleaner_grid(series: IntensitySeries, deadline_s: float, store: Ledger) -> None:
    """Say when the command will start, and wait until then (Ctrl-C: exit 130, nothing run)."""
    now = time.time()
    try:
        start, intensity = cleanest_start(series, now, deadline_s)
    except AuditorError:
        store.close()
        raise
    if start <= now:
        print(f"audit: the grid is at its cleanest within {format_duration(deadline_s)} now "
              f"({format_number(intensity)} g/kWh): starting", file=sys.stderr)
        return
    current = series.at(now) if not series.missing(now, now) else None
    was = f", {format_number(current)} g/kWh now" if current is not None else ""
    print(f"audit: the grid is cleanest within {format_duration(deadline_s)} at {format_time(start)} "
          f"({format_number(intensity)} g/kWh{was}): starting in {format_duration(start - now)}", file=sys.stderr)
    try:
        while (left := start - time.time()) > 0:
            time.sleep(min(left, 1.0))
    except KeyboardInterrupt:
        store.close()
        print("audit: not started (interrupted while waiting for a cleaner grid)", file=sys.stderr)
        raise typer.Exit(130) from None


def _state_of(code: int) -> tuple[TrialState, list[str]]:
    if code == 0:
        return TrialState.COMPLETE, []
    if code < 0:
        return TrialState.STOPPED, [f"signal: {signal.Signals(-code).name}"]
    return TrialState.FAILED, [f"exit code {code}"]


def run_command(
    command: list[str] = typer.Argument(..., help="The command to meter, after `--`.", metavar="-- COMMAND ARGS..."),
    sweep: str = typer.Option("runs", "--sweep", help="Sweep to record it in."),
    name: str | None = typer.Option(None, "--name", help="Name of the run (default: the command)."),
    final: bool = typer.Option(False, "--final", help="Mark it as the final training run."),
    ledger: str | None = typer.Option(None, "--ledger", help=LEDGER_HELP),
    when_cleaner: str | None = typer.Option(
        None, "--when-cleaner", help="Wait to start until the grid is cleanest within this deadline ('12h'), by the "
        "intensity series."),
    intensity_series: str | None = typer.Option(
        None, "--intensity-series", help="CSV of the grid's intensity over time (default: the intensity_series setting)."),
) -> None:
    """Run a command, meter it and its child processes, and record it as a trial."""
    settings = settings_with(ledger=ledger, intensity_series=intensity_series)
    deadline = parse_duration(when_cleaner) if when_cleaner is not None else None
    if deadline is not None and not settings.intensity_series:
        raise AuditorError("--when-cleaner needs the grid's intensity over time: give --intensity-series FILE "
                           "or set intensity_series")
    store = Ledger.open(settings.ledger)  # a bad ledger stops us before the command runs
    if deadline is not None:
        _wait_for_cleaner_grid(IntensitySeries.load(settings.intensity_series), deadline, store)
    store.ensure_sweep(sweep, framework="run", attrs={"settings": carbon_model(settings).to_record()})
    label = name or command_name(command)
    wall_start = time.time()
    try:
        process = subprocess.Popen(command)
    except FileNotFoundError:
        store.close()
        raise AuditorError(f"command not found: {command[0]}") from None
    except PermissionError:
        store.close()
        raise AuditorError(f"command not executable: {command[0]}") from None
    trial_key = f"{label}@{wall_start:.6f}:{process.pid}"
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    try:
        tree = ProcessTree(process.pid)
        sources, notes = default_sources(tree)
        meter = Meter(sources, root_pid=process.pid).start()  # the sampler inherits the blocked mask
        interval = meter.begin(gpus="auto")
        beats = {"last": 0.0, "failed": False}

        def beat() -> None:
            """A `running` row now and every few seconds: if `audit` itself is killed, the
            command is in the ledger with its energy up to the last heartbeat."""
            now = time.time()
            if now - beats["last"] < HEARTBEAT_S:
                return
            beats["last"] = now
            try:
                store.record_trial(record_for(
                    meter.snapshot(interval), sweep=sweep, trial_key=trial_key, name=label, state=TrialState.RUNNING,
                    wall_start=wall_start, wall_end=now, params={"command": command}, flags=["heartbeat"], is_final=final,
                ))
            except AuditorError as exc:
                if not beats["failed"]:  # once: the final record is held back if the fault lasts
                    print(f"audit: heartbeat not recorded: {exc}", file=sys.stderr)
                beats["failed"] = True

        code, cpu_seconds = _wait_forwarding_signals(process, beat)
        tree.finish(cpu_seconds)
        meter.flush()  # take the command's last readings before its interval ends
        meter.end(interval)
        try:
            measurement = meter.measure(interval)
        finally:
            meter.stop()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
    state, flags = _state_of(code)
    record = record_for(
        measurement, sweep=sweep, trial_key=trial_key, name=label, state=state,
        wall_start=wall_start, wall_end=time.time(), params={"command": command}, flags=flags, is_final=final,
    )
    store.close()
    with warnings.catch_warnings():  # the reason is in the line below
        warnings.simplefilter("ignore", RuntimeWarning)
        writer = LedgerWriter(settings.ledger, sweep, "run", {"settings": carbon_model(settings).to_record()},
                              timeout_s=settings.ledger_timeout, spool_dir=settings.spool_dir)
        if writer.write([record]):
            where = f"recorded in sweep {sweep!r} of {store.location}"
        else:
            where = (f"held back ({writer.problem}); kept in {writer.spool_path} until an audit command "
                     "or search opens this ledger again")
    if writer.ledger is not None:
        writer.ledger.close()
    kwh = measurement.joules / JOULES_PER_KWH
    print(
        f"audit: {label!r} {state.value} after {format_duration(measurement.duration_s)}: "
        f"{format_quantity(Metric.ENERGY_KWH, kwh)}, {format_quantity(Metric.GPU_HOURS, measurement.gpu_seconds / 3600)}; {where}",
        file=sys.stderr,
    )
    for note in notes:
        print(f"audit: {note}", file=sys.stderr)
    raise typer.Exit(code if code >= 0 else 128 - code)
