"""Spending less with Ray Tune, on real Ray (2 CPUs, 2 logical GPUs metered through the
simulated GPU source, 300 W each): a trial's cost so far inside the trainable (``usage()``),
and its joules as the scheduler's clock (``auditor/energy_j`` as ASHA's ``time_attr``). Each
figure a trial saw is checked against Ray's own records of it and against its ledger record."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="ray[tune] is in the dev extra")

from auditor.integrations.ray_tune import AuditLoggerCallback, usage, with_audit  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.schedulers import ASHAScheduler  # noqa: E402

from auditor.ledger import Ledger, TrialState  # noqa: E402
from auditor.model.regions import WORLD_AVERAGE, resolve_region  # noqa: E402
from auditor.search.figures import ENERGY_CLOCK  # noqa: E402

pytestmark = [pytest.mark.slow]


def run(tmp_path: Path, trainable, audit: AuditLoggerCallback, space: dict | None = None, **tune_config) -> tune.ResultGrid:
    return tune.Tuner(
        trainable, param_space=space or {},
        tune_config=tune.TuneConfig(**tune_config) if tune_config else None,
        run_config=tune.RunConfig(name=f"steer-{tmp_path.name}"[:60], storage_path=str(tmp_path / "ray"),
                                  callbacks=[audit], stop=audit.stopper, verbose=0),
    ).fit()


def recorded(ledger: str) -> dict[str, object]:
    with Ledger.open(ledger) as store:
        [sweep] = store.sweeps()
        return {t.trial_key: t for t in store.trials(sweep.name)}


def spender(config: dict) -> None:
    """Reports its cost so far at each of its 6 steps, as a user's trainable would."""
    for step in range(6):
        time.sleep(0.15)
        used = usage()
        tune.report({"loss": config["lr"] * (6 - step), "used_kwh": used.energy_kwh, "used_facility_kwh": used.facility_kwh,
                     "used_co2e_kg": used.co2e_kg, "used_gpu_h": used.gpu_hours, "used_usd": used.cost_usd})


def test_usage_inside_the_trainable_is_the_cost_so_far_never_above_the_record(tmp_path: Path, ray_session: None) -> None:
    ledger = str(tmp_path / "l.db")
    audit = AuditLoggerCallback(ledger=ledger, region="FR", pue=1.2, price_per_gpu_hour=3.0)
    results = run(tmp_path, tune.with_resources(with_audit(spender), {"cpu": 1, "gpu": 1}), audit,
                  {"lr": tune.grid_search([0.1, 0.2, 0.3])})
    trials = recorded(ledger)
    assert len(trials) == 3 and all(t.state is TrialState.COMPLETE for t in trials.values())
    intensity = resolve_region("FR").g_co2e_per_kwh / 1000
    assert intensity < WORLD_AVERAGE.g_co2e_per_kwh / 1000 / 2  # the driver's region, not a default, reached the trials
    print("\nusage() at the last report / ledger record, mWh per trial:", sorted(
        (round(r.metrics_dataframe["used_kwh"].iloc[-1] * 1e6, 3), round(trials[r.metrics["trial_id"]].energy_kwh * 1e6, 3)) for r in results))
    for result in results:
        rows = result.metrics_dataframe  # every result the trial reported, as Ray keeps it
        record = trials[result.metrics["trial_id"]]
        assert len(rows) == 6 and rows["used_kwh"].iloc[-1] > 0 and rows["used_gpu_h"].iloc[-1] > 0
        assert rows["used_kwh"].is_monotonic_increasing and rows["used_gpu_h"].is_monotonic_increasing
        assert rows["used_kwh"].iloc[-1] <= record.energy_kwh and rows["used_gpu_h"].iloc[-1] <= record.gpu_hours
        assert rows["used_kwh"].iloc[-1] >= 0.5 * record.energy_kwh  # the cost so far (GPU ~0.1 s behind), not a token figure
        for _, row in rows.iterrows():  # measured the same way: the sweep's PUE, grid and price
            assert row["used_facility_kwh"] == pytest.approx(1.2 * row["used_kwh"], rel=1e-12)
            assert row["used_co2e_kg"] == pytest.approx(row["used_facility_kwh"] * intensity, rel=1e-12)
            assert row["used_usd"] == pytest.approx(3.0 * row["used_gpu_h"], rel=1e-12)
        final = audit.model.footprint(record.energy_kwh, record.gpu_hours)  # what the report computes
        assert rows["used_co2e_kg"].iloc[-1] <= final.co2e_kg and rows["used_usd"].iloc[-1] <= final.cost_usd


def test_usage_outside_an_audited_trial_is_a_clear_error(tmp_path: Path, ray_session: None) -> None:
    with pytest.raises(ValueError, match="with_audit"):
        usage()  # the driver runs no trial

    def unaudited(config: dict) -> None:
        try:
            usage()
            tune.report({"error": ""})
        except ValueError as exc:
            tune.report({"error": str(exc)})

    [result] = run(tmp_path, unaudited, AuditLoggerCallback(ledger=str(tmp_path / "l.db")))
    assert "with_audit" in result.metrics["error"]


def test_asha_counts_its_rungs_in_joules(tmp_path: Path, ray_session: None) -> None:
    """ASHA on the energy clock: every result carries the trial's joules so far, never
    decreasing; ASHA cuts trials short only where they cross a rung in joules, ends the rest at
    ``max_t`` joules; no trial's clock ever passes its ledger record."""
    def train(config: dict) -> None:
        for step in range(200):
            time.sleep(0.02)
            tune.report({"loss": config["lr"] * (200 - step)})

    ledger = str(tmp_path / "l.db")
    asha = ASHAScheduler(time_attr=ENERGY_CLOCK, metric="loss", mode="min", max_t=300, grace_period=40, reduction_factor=2)
    audit = AuditLoggerCallback(ledger=ledger, scheduler=asha)
    results = run(tmp_path, tune.with_resources(with_audit(train, energy_clock=True), {"cpu": 1, "gpu": 1}), audit,
                  {"lr": tune.grid_search([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])}, scheduler=asha)
    rungs = sorted(milestone for milestone, _ in asha._brackets[0]._rungs)
    assert rungs == [40, 80, 160]
    trials = recorded(ledger)
    states = {key: t.state for key, t in trials.items()}
    assert TrialState.STOPPED in states.values() and TrialState.COMPLETE in states.values()
    seen = sorted((trials[r.metrics["trial_id"]].state.value, len(r.metrics_dataframe),
                   round(r.metrics_dataframe[ENERGY_CLOCK].iloc[-1], 1), round(r.metrics[ENERGY_CLOCK], 1)) for r in results)
    print(f"\nASHA in joules, rungs {rungs} J, max_t 300 J: (state, results, last clock J, ledger J) {seen}")
    for result in results:
        clock = result.metrics_dataframe[ENERGY_CLOCK]
        record = trials[result.metrics["trial_id"]]
        assert clock.notna().all() and len(clock) >= 2  # on every result
        assert clock.is_monotonic_increasing
        assert clock.iloc[-1] <= record.energy_kwh * 3.6e6  # never above the ledger's record
        assert result.metrics[ENERGY_CLOCK] == pytest.approx(record.energy_kwh * 3.6e6, rel=1e-12)  # the grid shows the record
        if record.state is TrialState.COMPLETE:
            assert clock.iloc[-1] >= 300  # ran to max_t, in joules
        else:  # cut short where it crossed a rung, in joules
            assert record.state is TrialState.STOPPED and clock.iloc[-1] < 300
            assert any(clock.iloc[-2] < rung <= clock.iloc[-1] for rung in rungs), list(clock.tail(3))


class Spender(tune.Trainable):
    def setup(self, config: dict) -> None:
        self.lr = config["lr"]
        self.count = 0

    def step(self) -> dict:
        time.sleep(0.05)
        self.count += 1
        return {"loss": self.lr / self.count, "used_kwh": usage().energy_kwh}


def test_a_class_trainable_gets_usage_and_the_clock_from_the_callbacks_scheduler(tmp_path: Path, ray_session: None) -> None:
    """``usage()`` from a ``tune.Trainable``'s step; the energy clock on every result without
    ``energy_clock=True``, since the callback was given a scheduler counting in joules."""
    ledger = str(tmp_path / "l.db")
    asha = ASHAScheduler(time_attr=ENERGY_CLOCK, metric="loss", mode="min", max_t=150, grace_period=50, reduction_factor=2)
    audit = AuditLoggerCallback(ledger=ledger, scheduler=asha, region="DE")
    results = run(tmp_path, tune.with_resources(with_audit(Spender), {"cpu": 1, "gpu": 1}), audit,
                  {"lr": tune.grid_search([1.0, 2.0])}, scheduler=asha)
    trials = recorded(ledger)
    assert len(trials) == 2
    for result in results:
        rows = result.metrics_dataframe
        record = trials[result.metrics["trial_id"]]
        assert rows[ENERGY_CLOCK].notna().all() and rows[ENERGY_CLOCK].is_monotonic_increasing
        assert 0 < rows["used_kwh"].iloc[-1] <= record.energy_kwh
        assert rows[ENERGY_CLOCK].iloc[-1] <= record.energy_kwh * 3.6e6
