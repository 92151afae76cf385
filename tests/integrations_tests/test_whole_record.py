"""What issue 25 found the features doing wrong together, each pinned (the truth harness,
test_truth_optuna.py, draws them all at once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from auditor.integrations.optuna import AuditCallback

from auditor.ledger import Ledger, TrialRecord
from auditor.meters.base import EnergyReading
from auditor.meters.cpu import probe_cpu
from auditor.meters.sampler import Meter

optuna.logging.set_verbosity(optuna.logging.WARNING)

README_RUN = """
import optuna
from auditor.integrations.optuna import AuditCallback
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.create_study(study_name="readme")
audit = AuditCallback(study, ledger="ledger.db", region="DE")
study.optimize(lambda trial: trial.suggest_float("x", -1, 1) ** 2, n_trials=20, callbacks=[audit])
audit.flush()
"""


def test_three_runs_of_the_readme_example_keep_60_trials_in_three_runs(tmp_path: Path, audit) -> None:
    for _ in range(3):
        subprocess.run([sys.executable, "-c", README_RUN], cwd=tmp_path, check=True, timeout=120)
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        trials = ledger.trials("readme")
        runs = ledger.runs("readme")
    assert len(trials) == 60 and len(runs) == 3
    assert sorted(t.number for t in trials if t.run == runs[1]) == list(range(20))
    listed = json.loads(audit("trials", "readme", "--ledger", str(tmp_path / "ledger.db"), "--format", "json").out)
    assert [(t["run_number"], t["number"]) for t in listed] == [(r, n) for r in (1, 2, 3) for n in range(20)]
    table = audit("trials", "readme", "--ledger", str(tmp_path / "ledger.db")).out
    assert "3/19" in table and "1/0" in table
    report = json.loads(audit("report", "--ledger", str(tmp_path / "ledger.db"), "--format", "json").out)
    assert report["sweeps"][0]["runs"] == 3 and report["sweeps"][0]["trials"] == 60


def test_a_study_continued_from_its_storage_is_the_same_run(tmp_path: Path, gpu_meter: Meter) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    for _ in range(2):
        study = optuna.create_study(study_name="cont", storage=storage, load_if_exists=True)
        audit = AuditCallback(study, ledger=str(tmp_path / "l.db"), meter=gpu_meter, devices="all")
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3, callbacks=[audit])
        audit.close()
    optuna.delete_study(study_name="cont", storage=storage)
    study = optuna.create_study(study_name="cont", storage=storage)  # created anew: another run
    audit = AuditCallback(study, ledger=str(tmp_path / "l.db"), meter=gpu_meter, devices="all")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2, callbacks=[audit])
    audit.close()
    with Ledger.open(tmp_path / "l.db") as ledger:
        runs = ledger.runs("cont")
        by_run = {run: sorted(t.number for t in ledger.trials("cont") if t.run == run) for run in runs}
    assert list(by_run.values()) == [[0, 1, 2, 3, 4, 5], [0, 1]]


def test_a_constraint_leaves_every_joule_with_the_trials(tmp_path: Path, gpu_meter: Meter) -> None:
    """constraint= built an optuna.Trial per finished trial, whose before_trial opened an interval
    that never closed: each took a share of every later trial's energy (8.78 J -> 0.90 J)."""
    study = optuna.create_study(study_name="c")
    audit = AuditCallback(study, ledger=str(tmp_path / "l.db"), meter=gpu_meter, devices="all", constraint="5 mg")
    study.optimize(lambda t: (time.sleep(0.05), t.suggest_float("x", 0, 1))[1], n_trials=12, callbacks=[audit])
    audit.close()
    with Ledger.open(tmp_path / "l.db") as ledger:
        rows = ledger.trials("c", include_idle=True)
    assert sum(r.energy_joules for r in rows) == pytest.approx(sum(gpu_meter.counter_deltas().values()) -
                                                               sum(gpu_meter.unowned_idle().values()), rel=1e-9)
    limit_kwh = 0.005 / audit.model.region.g_co2e_per_kwh / audit.model.effective_pue  # 5 mg at the grid
    for trial in study.trials:
        assert trial.constraints["auditor"] < 0 or trial.user_attrs["auditor_co2e_kg"] > 5e-6
    assert limit_kwh > 0


def test_usage_is_current_at_the_objectives_end(tmp_path: Path) -> None:
    """usage() read the CPU estimate polled every 0.5 s: 0 in short trials (median 0.000 of the record)."""
    study = optuna.create_study(study_name="u")
    audit = AuditCallback(study, ledger=str(tmp_path / "l.db"), region="FR")
    seen: dict[int, float] = {}
    read_at: dict[int, float] = {}

    def objective(trial: optuna.Trial) -> float:
        deadline = time.process_time() + 0.1
        while time.process_time() < deadline:
            pass
        seen[trial.number] = audit.usage(trial).energy_kwh
        read_at[trial.number] = time.time()
        return 0.0

    study.optimize(objective, n_trials=5, callbacks=[audit])
    audit.close()
    with Ledger.open(tmp_path / "l.db") as ledger:
        recorded = {t.number: t for t in ledger.trials("u")}
    watts = probe_cpu().watts_per_logical_cpu * (os.cpu_count() or 1) + 1.0  # the most it can draw: every core, memory
    for number, record in recorded.items():
        closed = max(record.end_time, record.recorded_at)  # the meter closes the trial when its record is made
        after_kwh = watts * max(0.0, closed - read_at[number]) / 3.6e6
        assert 0.95 * record.energy_kwh - after_kwh <= seen[number] <= record.energy_kwh  # (it read 0 before)


def test_a_stop_at_the_first_trial_is_recorded_though_the_sweep_is_not_written_yet(tmp_path: Path, gpu_meter: Meter, audit) -> None:
    ledger_path = str(tmp_path / "l.db")
    with Ledger.open(ledger_path) as ledger:  # the project's budget is spent by an earlier search
        ledger.ensure_sweep("earlier")
        ledger.record_trial(TrialRecord(sweep="earlier", trial_key="0", state="complete", start_time=0.0, end_time=1.0,
                                        energy={"gpu": EnergyReading(3.6e6, "counter")}))
    for attempt in range(5):
        study = optuna.create_study(study_name=f"late-{attempt}")
        callback = AuditCallback(study, ledger=ledger_path, meter=gpu_meter, devices="all", budget="1 Wh", scope="project")
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3, callbacks=[callback])
        callback.close()
        assert callback.stopped_by_budget
        with Ledger.open(ledger_path) as ledger:
            assert [e.action for e in ledger.budget_events(f"late-{attempt}")] == ["stop-new"]
            [refused] = ledger.trials(f"late-{attempt}")
        assert refused.stopped_by_budget and "refused-by-budget" in refused.flags and refused.params == {}
    result = audit("report", "--ledger", ledger_path, "--format", "statement")
    assert "1 training run across" in result.out and "5 more trials were refused by a spent budget" in result.out
    assert "no final run was marked" not in result.out or "best trial" in result.out
    report = json.loads(audit("report", "--ledger", ledger_path, "--format", "json").out)
    assert report["totals"]["trials_refused_by_budget"] == 5
