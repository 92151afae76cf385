"""Letting the search see what each trial costs (issue 15), with real Optuna and the real ledger.

Energy comes from a simulated 300 W GPU (the hardware boundary) held for as long as each trial
sleeps, so the trials' costs differ by design and are known to the tenth.
"""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
from auditor.integrations.optuna import AuditCallback

from auditor.errors import InvalidInputError
from auditor.ledger import Ledger
from auditor.meters.sampler import Meter
from auditor.search.constraint import CONSTRAINT_KEY, CostConstraint

optuna.logging.set_verbosity(optuna.logging.WARNING)
WATTS = 300.0


def records_of(ledger: str, sweep: str) -> dict[int, object]:
    with Ledger.open(ledger) as store:
        return {t.number: t for t in store.trials(sweep) if t.number is not None}


def test_usage_inside_the_objective_is_positive_and_never_above_the_record(tmp_path: Path, gpu_meter: Meter) -> None:
    ledger = str(tmp_path / "ledger.db")
    audit = AuditCallback(ledger=ledger, devices="all", meter=gpu_meter, region="FR")
    study = optuna.create_study(study_name="usage", directions=["minimize", "minimize"])
    audit.attach(study)
    seen: dict[int, tuple[float, float, float]] = {}

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        seconds = trial.suggest_float("seconds", 0.2, 0.5)
        time.sleep(seconds)
        so_far = audit.usage(trial)
        seen[trial.number] = (so_far.energy_kwh, so_far.gpu_hours, so_far.co2e_kg)
        return seconds, so_far.energy_kwh

    study.optimize(objective, n_trials=4, callbacks=[audit])
    audit.flush()
    records = records_of(ledger, "usage")
    for trial in study.trials:  # Optuna's own list of trials, each against its ledger record
        energy, gpu_hours, co2e = seen[trial.number]
        record = records[trial.number]
        assert 0 < energy <= record.energy_kwh and 0 < gpu_hours <= record.gpu_hours and co2e > 0
        assert trial.values[1] == energy
        assert energy >= 0.5 * record.energy_kwh  # most of the trial had run when it was asked


def test_usage_outside_a_running_trial_says_why(tmp_path: Path, gpu_meter: Meter) -> None:
    audit = AuditCallback(ledger=str(tmp_path / "l.db"), devices="all", meter=gpu_meter)
    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(ValueError, match="not running under this callback"):
        audit.usage(trial)


def test_constraint_is_the_measured_cost_minus_the_limit_in_every_state(tmp_path: Path, gpu_meter: Meter) -> None:
    """Trials of 0.1-0.6 s at 300 W cost 8-50 mWh of GPU energy; the limit of 25 mWh makes
    some feasible and some not. Complete, pruned and failed trials all carry their cost."""
    ledger = str(tmp_path / "ledger.db")
    audit = AuditCallback(ledger=ledger, devices="all", meter=gpu_meter, constraint="25 mWh")
    study = optuna.create_study(study_name="constrained", sampler=optuna.samplers.RandomSampler(seed=1))
    audit.attach(study)

    def objective(trial: optuna.Trial) -> float:
        seconds = trial.suggest_float("seconds", 0.1, 0.6)
        time.sleep(seconds)
        if trial.number == 3:
            raise optuna.TrialPruned()
        if trial.number == 4:
            raise ValueError("a failed trial")
        return -seconds  # longer is better: the best unconstrained trial is the costliest

    study.optimize(objective, n_trials=8, callbacks=[audit], catch=(ValueError,))
    audit.flush()
    records = records_of(ledger, "constrained")
    limit = audit.constraint.limit.value
    assert limit == pytest.approx(0.025e-3)
    states = set()
    for trial in study.trials:
        record = records[trial.number]
        value = trial.constraints[CONSTRAINT_KEY]
        assert value == trial.user_attrs["auditor_energy_kwh"] - limit  # the same figure, exactly
        assert value == record.energy_kwh - limit
        assert (value <= 0) == (record.energy_kwh <= limit)
        states.add(trial.state)
    assert states == {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL}
    feasible = [t for t in study.trials if t.state.is_finished() and t.constraints[CONSTRAINT_KEY] <= 0 and t.values]
    infeasible = [t for t in study.trials if t.values and t.constraints[CONSTRAINT_KEY] > 0]
    assert feasible and infeasible  # the limit cuts through this search
    assert study.best_trial.constraints[CONSTRAINT_KEY] <= 0  # Optuna's best respects the limit
    assert study.best_trial.value == min(t.value for t in feasible)


@pytest.mark.parametrize(("text", "message"), [("$0.1", "no price is set"), ("0 kWh", "more than zero"), ("-1 kWh", ">= 0"), ("5 parsecs", "parsecs")])
def test_a_constraint_that_cannot_be_used_is_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        AuditCallback(ledger=":memory:", constraint=text)


def test_a_dollar_constraint_with_a_price_counts_dollars() -> None:
    audit = AuditCallback(ledger=":memory:", constraint="$0.10", price_per_gpu_hour=2.0)
    assert audit.constraint == CostConstraint.parse("$0.10")
    footprint = audit.model.footprint(0.0, 0.1)  # 0.1 GPU-hour at $2 = $0.20
    assert audit.constraint.value(footprint) == pytest.approx(0.10)


def test_trial_figures_follow_the_hourly_series_as_the_report_does(tmp_path: Path, gpu_meter: Meter,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Under an hourly series of 100 g/kWh (region DE says ~380), each trial's auditor_co2e_kg,
    its usage() and the report's sweep all charge 100 g/kWh."""
    hour = int(time.time() // 3600) * 3600
    series = tmp_path / "grid.csv"
    rows = [f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(hour + 3600 * k))},100" for k in range(-3, 4)]
    series.write_text("timestamp,intensity_g_per_kwh\n" + "\n".join(rows) + "\n")
    monkeypatch.setenv("AUDITOR_INTENSITY_SERIES", str(series))
    ledger = str(tmp_path / "ledger.db")
    audit = AuditCallback(ledger=ledger, devices="all", meter=gpu_meter, region="DE", pue=1.5)
    study = optuna.create_study(study_name="hourly")
    audit.attach(study)
    inside: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        time.sleep(0.2)
        so_far = audit.usage(trial)
        inside.append(so_far.co2e_kg / so_far.facility_kwh)
        return trial.suggest_float("x", 0, 1)

    study.optimize(objective, n_trials=3, callbacks=[audit])
    audit.flush()
    for trial in study.trials:
        attrs = trial.user_attrs
        assert attrs["auditor_co2e_kg"] == pytest.approx(attrs["auditor_energy_kwh"] * 1.5 * 100 / 1000, rel=1e-12)
    assert inside == pytest.approx([0.1] * 3)  # kg per facility kWh: 100 g
    from auditor.model.carbon import CarbonModel
    from auditor.report.build import build_report

    with Ledger.open(ledger) as store:
        [sweep] = build_report(store, CarbonModel())["sweeps"]
    assert sweep["co2e_kg"] == pytest.approx(sweep["facility_kwh"] * 0.1, rel=1e-12)
