"""Optuna's n_jobs threads on the CPU-time estimate: each trial is charged its own thread's CPU
time, and shares only the rest of the process's with the trials beside it (issue 32)."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
from auditor.integrations.optuna import AuditCallback

from auditor.ledger import Ledger
from auditor.meters.cpu import CpuTimeSource, probe_cpu
from auditor.meters.sampler import Meter

optuna.logging.set_verbosity(optuna.logging.WARNING)
WORK_S = 0.6


def _sleep_or_burn(trial: optuna.Trial) -> float:
    trial.set_user_attr("thread_cpu_start", time.thread_time())
    if trial.number % 2:
        time.sleep(WORK_S)
    else:
        deadline = time.thread_time() + WORK_S
        while time.thread_time() < deadline:
            pass
    trial.set_user_attr("thread_cpu", time.thread_time() - trial.user_attrs["thread_cpu_start"])
    return 0.0


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


@pytest.mark.slow
def test_n_jobs_trials_are_charged_their_own_threads_work(tmp_path: Path) -> None:
    """Before: two threads, trials alternating a 3 s sleep and a 3 s busy loop, were charged
    4.3 J and 3.8 J alike; the sleeping trial used no CPU."""
    watts = probe_cpu().watts_per_logical_cpu
    with Meter([CpuTimeSource()]) as meter:
        study = optuna.create_study(study_name="threads")
        audit = AuditCallback(study, ledger=str(tmp_path / "l.db"), meter=meter)
        study.optimize(_sleep_or_burn, n_trials=8, n_jobs=2, callbacks=[audit])
        audit.close()
        deltas = sum(meter.counter_deltas().values()) - sum(meter.unowned_idle().values())
    with Ledger.open(tmp_path / "l.db") as ledger:
        records = {t.number: t for t in ledger.trials("threads")}
        rows = ledger.trials("threads", include_idle=True)
    busy_excess_s, slept_s = [], []
    for trial in study.trials:
        charged_s = records[trial.number].energy["cpu"].joules / watts
        own_s = trial.user_attrs["thread_cpu"]
        if trial.number % 2:  # slept: only a share of what the process's other threads did
            slept_s.append(charged_s)
        else:  # all of its own thread's work, and a share of the other threads' beside it
            assert own_s <= charged_s * 1.02, (trial.number, charged_s, own_s)
            busy_excess_s.append(charged_s - own_s)
    # The other threads' work (the sampler, Optuna's and the ledger's work outside the objectives)
    # is shared among the trials open beside it: what a busy trial gets beyond its own thread's is
    # what a sleeping one gets, not the busy thread's work (before: the two were charged alike).
    # Compared with each other, not with a fixed margin: that share grows with the machine's load.
    assert _mean(slept_s) < 0.5 * WORK_S, slept_s
    assert _mean(busy_excess_s) <= _mean(slept_s) + 0.1 * WORK_S, (busy_excess_s, slept_s)
    assert sum(r.energy_joules for r in rows) == pytest.approx(deltas, rel=1e-9)  # nothing counted twice or lost
