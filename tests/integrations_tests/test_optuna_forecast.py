"""The forecast before the bill and the parameters that cost the energy (issue 15), on real
Optuna searches, the real SQLite ledger and `audit report` / `audit plan`.

Energy comes from a simulated 300 W GPU (the hardware boundary) held for as long as each trial
sleeps. In the forecast searches each trial sleeps a time drawn from one fixed distribution
(seeded), whatever Optuna suggests: costs vary from trial to trial but the search is stationary,
the case the projection is made for. In the importance search the sleep is proportional to one
parameter by construction.

The simulated GPU draws 300 W between trials too (a trial's end waits up to 0.1 s for the
counter's next step), so here the energy between trials is about as large as the trials' own:
a harsh case for the projection's idle share. Measured over seeds 1-8 of the first test's
search: the forecast after 5 trials was off by -12 % to +19 % (seed 3, used here: +8 %).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from pathlib import Path

import optuna
import pytest
from auditor.integrations.optuna import AuditCallback

from auditor.ledger import Ledger
from auditor.meters.sampler import Meter
from auditor.model.forecast import MIN_TRIALS

optuna.logging.set_verbosity(optuna.logging.WARNING)
WATTS = 300.0


def forecast_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "auditor" and "forecast after" in r.getMessage()]


def stationary_search(ledger: str, meter: Meter, *, name: str, planned: int, run: int, seed: int, **kwargs) -> AuditCallback:
    """``run`` trials of a search planned for ``planned``, each sleeping 0.06-0.14 s (uniform)."""
    draws = random.Random(seed)
    audit = AuditCallback(ledger=ledger, devices="all", meter=meter, n_trials=planned, region="FR", **kwargs)
    study = optuna.create_study(study_name=name, sampler=optuna.samplers.RandomSampler(seed=seed))
    audit.attach(study)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -1, 1)
        time.sleep(draws.uniform(0.06, 0.14))
        return x * x

    study.optimize(objective, n_trials=run, callbacks=[audit])
    audit.flush()
    return audit


def sweep_json(audit_cli, ledger: str, name: str) -> dict:
    result = audit_cli("report", "--ledger", ledger, "--format", "json")
    assert result.code == 0, result.err
    return next(s for s in json.loads(result.out)["sweeps"] if s["name"] == name)


def test_the_forecast_after_five_trials_is_within_20_percent_of_the_whole_search(
        tmp_path: Path, gpu_meter: Meter, caplog: pytest.LogCaptureFixture, audit) -> None:
    ledger = str(tmp_path / "ledger.db")
    with caplog.at_level(logging.INFO, logger="auditor"):
        callback = stationary_search(ledger, gpu_meter, name="steady", planned=40, run=40, seed=3)
    lines = forecast_lines(caplog)
    assert len(lines) == 1 and lines[0].startswith(f"forecast after {MIN_TRIALS} finished trials: at this rate 40 trials cost ")
    early = callback.forecaster.last
    assert early is not None and early.trials_seen == MIN_TRIALS and early.planned == 40
    actual = sweep_json(audit, ledger, "steady")  # trials and idle, as the report counts them
    assert actual["trials"] == 40
    error = early.total.energy_kwh / actual["energy_kwh"] - 1
    assert abs(error) < 0.20, f"forecast {early.total.energy_kwh} kWh, actual {actual['energy_kwh']} kWh"
    assert early.total.co2e_kg == pytest.approx(actual["co2e_kg"], rel=0.20)
    assert early.low.energy_kwh < early.total.energy_kwh < early.high.energy_kwh
    assert actual["forecast"] is None  # done as planned: nothing left to forecast


def test_log_report_and_json_say_the_same_forecast_and_the_budget_s_end(
        tmp_path: Path, gpu_meter: Meter, caplog: pytest.LogCaptureFixture, audit) -> None:
    """A search planned for 60 trials, run for 30 so far, under a 300 mWh budget in warn mode
    (it would pass it at about trial 36): the log says the forecast after 5 trials and again at
    the 50 and 80 % warnings; the report projects the rest from the ledger."""
    ledger = str(tmp_path / "ledger.db")
    with caplog.at_level(logging.INFO, logger="auditor"):
        callback = stationary_search(ledger, gpu_meter, name="half", planned=60, run=30, seed=5, budget="300 mWh", mode="warn")
    callback.close()  # the search is over: its idle energy is the ledger's from here (the plugin's grew on)
    lines = forecast_lines(caplog)
    assert len(lines) == 3, lines  # after 5 trials, at 50 % and at 80 %
    assert all("the 300 mWh budget lasts to about trial " in line for line in lines)
    ends = [int(re.search(r"lasts to about trial (\d+)", line).group(1)) for line in lines]
    sweep = sweep_json(audit, ledger, "half")
    per_trial = sweep["energy_kwh"] / sweep["trials"]
    crossing = 0.3e-3 / per_trial  # where the budget runs out at the rate of the 30 trials
    assert all(abs(end - crossing) / crossing < 0.2 for end in ends), (ends, crossing)

    forecast = sweep["forecast"]  # the report's, from the ledger's 30 trials
    final = callback.forecast()  # the plugin's, from the same 30 trials
    assert forecast["trials_seen"] == final.trials_seen == 30 and forecast["planned_trials"] == 60
    assert forecast["total"]["energy_kwh"] == pytest.approx(final.total.energy_kwh, rel=0.01)
    assert forecast["budget_lasts_to_trial"] == pytest.approx(final.lasts_to, abs=1)
    assert forecast["total"]["energy_kwh"] == pytest.approx(2 * sweep["energy_kwh"], rel=0.01)  # 60 trials at this rate
    table = audit("report", "--ledger", ledger)
    assert f"half: forecast from its 30 finished trials: {forecast['text']}." in table.out
    assert "e-0" not in table.out and "e+0" not in table.out


def test_the_parameter_that_drives_the_energy_ranks_first(tmp_path: Path, gpu_meter: Meter, audit) -> None:
    """Each trial sleeps 30 ms per unit of width: width makes the energy, noise and act do not."""
    ledger = str(tmp_path / "ledger.db")
    callback = AuditCallback(ledger=ledger, devices="all", meter=gpu_meter)
    study = optuna.create_study(study_name="drivers", sampler=optuna.samplers.RandomSampler(seed=2))
    callback.attach(study)

    def objective(trial: optuna.Trial) -> float:
        width = trial.suggest_int("width", 1, 8)
        noise = trial.suggest_float("noise", -1, 1)
        act = trial.suggest_categorical("act", ["relu", "tanh"])
        time.sleep(0.03 * width)
        return noise + width + (act == "relu")

    study.optimize(objective, n_trials=30, callbacks=[callback])
    callback.flush()
    drivers = sweep_json(audit, ledger, "drivers")["energy_drivers"]
    shares = {p["name"]: p["share"] for p in drivers["parameters"]}
    assert next(p["name"] for p in drivers["parameters"]) == "width"
    assert shares["width"] > 0.6 and shares["noise"] < 0.15 and shares["act"] < 0.15, shares
    assert drivers["trials"] == 30
    table = audit("report", "--ledger", ledger)
    assert re.search(r"drivers: width explains \d+% of the variation in trial energy", table.out), table.out


def test_plan_like_a_past_sweep(tmp_path: Path, gpu_meter: Meter, audit) -> None:
    """`audit plan` from a real search's ledger: its per-trial cost, N times, in the grid given."""
    ledger = str(tmp_path / "ledger.db")
    stationary_search(ledger, gpu_meter, name="past", planned=20, run=20, seed=7)
    with Ledger.open(ledger) as store:
        energy = store.usage("past").energy_kwh  # trials and idle
        trials = sorted((t for t in store.trials("past") if t.state.value != "idle"), key=lambda t: t.end_time)
    kwh = [t.energy_kwh for t in trials]
    scale = energy / sum(kwh)  # the idle energy as a share of the trials'
    rest = sum(kwh[1:]) / (len(kwh) - 1)  # the first trial counts once (its warm-up), the others are the mean
    result = audit("plan", "--ledger", ledger, "--like", "past", "--trials", "200", "--budget", "1 Wh",
                   "--region", "DE", "--format", "json")
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    assert plan["trials"] == 200 and plan["from_trials"] == 20 and plan["grid"]["code"] == "DE"
    assert plan["total"]["energy_kwh"] == pytest.approx((kwh[0] + 199 * rest) * scale, rel=1e-9)
    assert plan["total"]["co2e_kg"] == pytest.approx(plan["total"]["facility_kwh"] * plan["grid"]["g_co2e_per_kwh"] / 1000)
    assert plan["low"]["energy_kwh"] < plan["total"]["energy_kwh"] < plan["high"]["energy_kwh"]
    assert plan["budget_covers_trials"] == 1 + int((1e-3 - kwh[0] * scale) / plan["per_trial"]["energy_kwh"])
    table = audit("plan", "--ledger", ledger, "--like", "past", "--trials", "200", "--budget", "1 Wh", "--region", "DE")
    assert table.code == 0 and "200 trials" in table.out
    assert f"The 1 Wh budget covers about {plan['budget_covers_trials']:,} trials like these." in table.out
    assert not re.search(r"\de[-+]\d", table.out)


@pytest.mark.parametrize(("args", "message"), [
    (["--like", "pats", "--trials", "10"], "no sweep called 'pats' in"),
    (["--like", "short", "--trials", "10"], "sweep 'short' has 3 finished trials; a plan needs at least 5"),
    (["--like", "past", "--trials", "0"], "Invalid value for '--trials'"),
    (["--like", "past", "--trials", "10", "--budget", "$5"], "a budget in USD needs a price"),
    (["--like", "past", "--trials", "10", "--budget", "5 parsecs"], "parsecs"),
])
def test_plan_bad_input_is_one_line(tmp_path: Path, audit, args: list[str], message: str) -> None:
    from auditor.ledger import TrialRecord
    from auditor.meters.base import EnergyReading

    ledger = str(tmp_path / "ledger.db")
    with Ledger.open(ledger) as store:
        for sweep, count in (("past", 6), ("short", 3)):
            store.ensure_sweep(sweep, "optuna")
            for i in range(count):
                store.record_trial(TrialRecord(sweep=sweep, trial_key=str(i), state="complete", start_time=i, end_time=i + 1,
                                               energy={"gpu": EnergyReading(3600.0, "counter")}))
    result = audit("plan", "--ledger", ledger, *args)
    assert result.code != 0
    assert result.err.startswith("error: ") and result.err.count("\n") == 1, result.err
    assert message in result.err
    if "pats" in args:
        assert "did you mean 'past'?" in result.err
