"""One truth: the ledger's trials and states equal the frameworks' own records one for one, and
every view of the figures (the trials' user attributes or result metrics, the budget's tally,
`audit sweeps`, `audit report` in json and csv) agrees with the ledger.

Optuna: n_jobs=2, pruning, a caught and an uncaught failure, resumed once. Ray Tune: ASHA, a
failing trial, the budget's stopper. Real frameworks; only the GPU is simulated.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import optuna
import pytest
from auditor.integrations.optuna import AuditCallback

from auditor.ledger import Ledger, TrialState
from auditor.meters.cpu import CpuTimeSource
from auditor.meters.sampler import Meter

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = [pytest.mark.slow]
OPTUNA_STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}
REL = 1e-3  # 0.1 %


def burn(seconds: float) -> None:
    deadline = time.process_time() + seconds
    while time.process_time() < deadline:
        pass


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0, 1)
    for step in range(3):
        burn(0.02)
        trial.report(x * (3 - step), step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    if trial.number in (4, 9):
        raise ValueError("caught")  # `catch=` keeps the study going
    return x


def views(audit, ledger: str) -> tuple[dict, list[dict], list[dict]]:
    result = audit("--ledger", ledger, "report", "--format", "json")
    assert result.code == 0 and result.out.startswith("{"), (result.out[:300], result.err[:300])
    report = json.loads(result.out)
    rows = list(csv.DictReader(io.StringIO(audit("--ledger", ledger, "report", "--format", "csv").out)))
    sweeps = json.loads(audit("--ledger", ledger, "sweeps", "--format", "json").out)
    return report, rows, sweeps


def test_optuna_ledger_equals_the_study_and_every_view_agrees(tmp_path: Path, audit) -> None:
    ledger, storage = str(tmp_path / "l.db"), f"sqlite:///{tmp_path / 'optuna.db'}"
    meter = Meter([CpuTimeSource()]).start()  # read at each trial's end: its figure is final at once
    for run in range(2):  # the second process resumes the study
        study = optuna.load_study(study_name="x", storage=storage) if run else optuna.create_study(
            study_name="x", storage=storage, pruner=optuna.pruners.ThresholdPruner(upper=2.0))
        callback = AuditCallback(ledger=ledger, meter=meter, devices=[], region="DE", budget="1 kWh").attach(study)
        study.optimize(objective, n_trials=8, n_jobs=2, callbacks=[callback], catch=(ValueError,))
        if run:
            with pytest.raises(RuntimeError):  # an uncaught failure ends optimize; the trial is still recorded
                study.optimize(lambda t: (_ for _ in ()).throw(RuntimeError("uncaught")), n_trials=1, callbacks=[callback])
        callback.flush()
        tally = callback.keeper.guard.spent(callback.trials.recorder.pending_usage())
        callback.close()
    meter.stop()

    trials = {t.number: t for t in study.trials}
    with Ledger.open(ledger) as store:
        recorded = {t.number: t for t in store.trials("x")}
    assert sorted(recorded) == sorted(trials)
    for number, trial in trials.items():
        assert recorded[number].state.value == OPTUNA_STATES[trial.state.name], number
        assert recorded[number].params == trial.params
        assert recorded[number].start_time == pytest.approx(trial.datetime_start.timestamp(), abs=0.5)
    assert {t.state.value for t in recorded.values()} >= {"complete", "pruned", "failed"}

    kwh = sum(t.energy_kwh for t in recorded.values())
    attrs = [t.user_attrs["auditor"] for t in study.trials if "auditor" in t.user_attrs]
    assert len(attrs) == len(trials)  # every trial, the uncaught failure too (written in after_trial)
    for trial in study.trials:  # each figure its own number, for optuna-dashboard: the ledger's, exactly
        record, own = recorded[trial.number], trial.user_attrs
        assert own["auditor_energy_kwh"] == own["auditor"]["energy_kwh"] == record.energy_kwh
        assert own["auditor_gpu_hours"] == own["auditor"]["gpu_hours"] == record.gpu_hours
        assert own["auditor_co2e_kg"] == own["auditor"]["co2e_kg"] == callback.model.footprint(
            record.energy_kwh, record.gpu_hours).co2e_kg
        assert own["auditor"]["region"] == "DE" and "auditor_cost_usd" not in own  # no price, no cost
    report, rows, sweeps = views(audit, ledger)
    best = min((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert report["final_run"]["kind"] == "best trial" and report["final_run"]["name"] == f"x/{best.number}"
    assert {k: report["final_run"][k] for k in ("energy_kwh", "co2e_kg", "gpu_hours")} == {
        k: best.user_attrs[f"auditor_{k}"] for k in ("energy_kwh", "co2e_kg", "gpu_hours")}
    whole = next(r for r in rows if r["sweep"] == "whole project")
    idle = report["totals"]["idle_kwh"]
    assert report["totals"]["energy_kwh"] == pytest.approx(kwh + idle, rel=1e-9)
    assert float(whole["energy_kwh"]) == pytest.approx(kwh + idle, rel=1e-9)
    assert sweeps[0]["energy_kwh"] == pytest.approx(kwh + idle, rel=1e-9)
    assert tally.energy_kwh == pytest.approx(kwh + idle, rel=REL)  # the budget's tally: every trial once
    co2e = report["totals"]["co2e_kg"]
    assert float(whole["co2e_kg"]) == pytest.approx(co2e, rel=1e-9) and sweeps[0]["co2e_kg"] == pytest.approx(co2e, rel=1e-9)
    idle_co2e = co2e * idle / (kwh + idle)  # idle energy between trials belongs to no trial
    assert sum(a["co2e_kg"] for a in attrs) + idle_co2e == pytest.approx(co2e, rel=1e-9)
    counts = report["totals"]["trials_by_state"]
    assert sum(counts.values()) == len(trials) == int(whole["trials"])
    for state in ("complete", "pruned", "failed"):
        assert counts.get(state, 0) == sum(1 for t in trials.values() if OPTUNA_STATES[t.state.name] == state)


def test_ray_ledger_equals_the_result_grid_and_every_view_agrees(tmp_path: Path, audit, ray_session: None,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from auditor.integrations.ray_tune import AuditLoggerCallback, with_audit
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    def train(config: dict) -> None:
        for step in range(6):
            time.sleep(0.05)
            if config["lr"] == 5.0 and step == 1:
                raise ValueError("diverged")
            tune.report({"loss": config["lr"] * (6 - step)})

    ledger = str(tmp_path / "l.db")
    scheduler = ASHAScheduler(metric="loss", mode="min", max_t=6, grace_period=2, reduction_factor=2)
    callback = AuditLoggerCallback(ledger=ledger, budget="1 kWh", region="FR", scheduler=scheduler)
    tuner = tune.Tuner(
        tune.with_resources(with_audit(train), {"cpu": 1, "gpu": 1}),
        param_space={"lr": tune.grid_search([0.1, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0])},
        tune_config=tune.TuneConfig(scheduler=scheduler),
        run_config=tune.RunConfig(name="cross", storage_path=str(tmp_path / "ray"), callbacks=[callback],
                                  stop=callback.stopper, verbose=0),
    )
    grid = tuner.fit()
    with Ledger.open(ledger) as store:
        recorded = {t.trial_key: t for t in store.trials("cross")}
        [overhead] = [t for t in store.trials("cross", include_idle=True) if t.state is TrialState.IDLE]
        tally = callback.keeper.guard.spent() if callback.keeper.guard else None

    assert len(recorded) == len(grid) == 7
    for result in grid:
        trial_id = result.metrics.get("trial_id") if result.metrics else None
        trial = recorded[trial_id] if trial_id else next(t for t in recorded.values() if t.state is TrialState.FAILED)
        if result.error is not None:
            expected = TrialState.FAILED
        elif result.metrics["training_iteration"] >= 6:
            expected = TrialState.COMPLETE  # reached ASHA's max_t: complete, not waste
        else:
            expected = TrialState.STOPPED  # cut short by ASHA
        assert trial.state is expected, (trial_id, result.metrics.get("training_iteration"))
        if result.metrics:  # Ray's grid shows the ledger's final figures
            assert result.metrics["auditor/energy_kwh"] == pytest.approx(trial.energy_kwh, rel=1e-12)
            assert result.metrics["auditor/gpu_seconds"] == pytest.approx(trial.gpu_seconds, rel=1e-12)
    assert {t.state for t in recorded.values()} == {TrialState.COMPLETE, TrialState.STOPPED, TrialState.FAILED}

    idle = overhead.energy_kwh  # the experiment's own cost outside trials: in every view, as Optuna's idle energy is
    assert idle > 0
    kwh = sum(t.energy_kwh for t in recorded.values()) + idle
    capsys.readouterr()  # what Ray printed
    report, rows, sweeps = views(audit, ledger)
    whole = next(r for r in rows if r["sweep"] == "whole project")
    assert report["totals"]["idle_kwh"] == pytest.approx(idle, rel=1e-9)
    assert report["totals"]["energy_kwh"] == pytest.approx(kwh, rel=1e-9)
    assert float(whole["energy_kwh"]) == pytest.approx(kwh, rel=1e-9) and sweeps[0]["energy_kwh"] == pytest.approx(kwh, rel=1e-9)
    assert tally is not None and tally.energy_kwh == pytest.approx(kwh, rel=REL)
    assert report["region"]["code"] == "FR"
    waste = sum(t.energy_kwh for t in recorded.values() if t.state is not TrialState.COMPLETE)
    assert report["totals"]["waste_fraction"] == pytest.approx(waste / kwh, rel=1e-6) and report["totals"]["waste_fraction"] < 1
    assert int(whole["stopped"]) == sum(1 for t in recorded.values() if t.state is TrialState.STOPPED)


def test_a_ray_trial_that_fails_before_its_first_report_keeps_its_energy(tmp_path: Path, ray_session: None) -> None:
    """It says nowhere where it ran: every node's meter is asked, and the one that metered it answers."""
    from auditor.integrations.ray_tune import AuditLoggerCallback, with_audit
    from ray import tune

    def train(config: dict) -> None:
        time.sleep(0.5)
        raise ValueError("fails before reporting")

    ledger = str(tmp_path / "l.db")
    callback = AuditLoggerCallback(ledger=ledger)
    tune.Tuner(tune.with_resources(with_audit(train), {"cpu": 1, "gpu": 1}), param_space={"x": 1},
               run_config=tune.RunConfig(name="early", storage_path=str(tmp_path / "ray"), callbacks=[callback],
                                         verbose=0)).fit()
    with Ledger.open(ledger) as store:
        [trial] = store.trials("early")
    assert trial.state is TrialState.FAILED
    assert "energy-missing" not in trial.flags and trial.energy["gpu"].joules > 0.4 * 300 * 0.5
    assert trial.energy["cpu"].joules > 0 and trial.gpu_seconds > 0.4
