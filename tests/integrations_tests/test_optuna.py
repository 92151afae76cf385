"""The Optuna plugin with real Optuna, real storages and the real ledger.

Energy comes from the CPU estimate of this process or from a simulated GPU (the hardware
boundary); budgets are small enough to be reached in seconds.
"""

from __future__ import annotations

import doctest
import math
import subprocess
import sys
import time
import warnings
from pathlib import Path

import auditor.integrations.optuna as plugin
import optuna
import pytest
from auditor.integrations.optuna import AuditCallback

from auditor.ledger import Ledger, TrialState
from auditor.meters.sampler import Meter

optuna.logging.set_verbosity(optuna.logging.WARNING)
HERE = Path(__file__).resolve().parent


def burn(seconds: float) -> None:
    deadline = time.process_time() + seconds
    while time.process_time() < deadline:
        pass


@pytest.fixture
def ledger_path(tmp_path: Path) -> str:
    return str(tmp_path / "ledger.db")


def trials_of(ledger: str, sweep: str):
    with Ledger.open(ledger) as store:
        return {t.number: t for t in store.trials(sweep)}


def test_docstring_example() -> None:
    assert doctest.testmod(plugin).failed == 0


def states_objective(trial: optuna.Trial) -> float:
    """Trial 0 completes, 1 is pruned, 2 fails under ``catch=``, 3 fails uncaught; on a GPU."""
    x = trial.suggest_float("x", 0, 1)
    time.sleep(0.15)
    if trial.number == 1:
        raise optuna.TrialPruned()
    if trial.number == 2:
        raise ValueError("caught by catch=")
    if trial.number == 3:
        raise RuntimeError("uncaught")
    return x


def test_every_state_is_recorded(ledger_path: str, gpu_meter: Meter) -> None:
    audit = AuditCallback(ledger=ledger_path, devices="all", meter=gpu_meter)
    study = optuna.create_study(study_name="states")

    with pytest.raises(RuntimeError, match="uncaught"):
        study.optimize(states_objective, n_trials=10, callbacks=[audit], catch=(ValueError,))
    audit.flush()
    trials = trials_of(ledger_path, "states")
    assert {n: t.state for n, t in trials.items()} == {
        0: TrialState.COMPLETE, 1: TrialState.PRUNED, 2: TrialState.FAILED, 3: TrialState.FAILED,
    }
    for trial in trials.values():
        assert trial.energy["gpu"].joules > 0 and trial.energy["gpu"].method == "counter"
        assert trial.gpu_seconds == pytest.approx(trial.end_time - trial.start_time, abs=0.05)
        assert trial.params.keys() == {"x"}
    assert trials[0].objective == [float(trials[0].params["x"])]
    assert "after-the-fact" in trials[0].flags  # seen before the callback was attached
    assert "after-the-fact" not in trials[3].flags  # the uncaught failure, seen through the sampler


def test_attach_before_optimize_sees_a_first_trial_that_fails_uncaught(ledger_path: str, gpu_meter: Meter) -> None:
    study = optuna.create_study(study_name="first-fails")
    audit = AuditCallback(ledger=ledger_path, devices="all", meter=gpu_meter).attach(study)

    def objective(trial: optuna.Trial) -> float:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        study.optimize(objective, n_trials=3, callbacks=[audit])
    audit.flush()
    [trial] = trials_of(ledger_path, "first-fails").values()
    assert trial.state is TrialState.FAILED and "after-the-fact" not in trial.flags


NUMERIC = ("auditor_energy_kwh", "auditor_co2e_kg", "auditor_gpu_hours", "auditor_cost_usd")


def run_every_state(study: optuna.Study, audit: AuditCallback) -> None:
    study.optimize(states_objective, n_trials=3, callbacks=[audit], catch=(ValueError,))
    with pytest.raises(RuntimeError, match="uncaught"):
        study.optimize(states_objective, n_trials=1, callbacks=[audit])
    audit.close()


def test_each_figure_is_a_numeric_user_attribute_equal_to_the_ledger(tmp_path: Path, ledger_path: str, gpu_meter: Meter) -> None:
    """Complete, pruned, caught and uncaught failures on a simulated GPU whose counter steps every
    0.1 s (the energy is final only after the trial's end): each trial's numeric attributes and
    its ``auditor`` attribute are exactly the figures of its record as read back from the ledger."""
    from auditor.model.carbon import CarbonModel

    study = optuna.create_study(study_name="numeric", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    audit = AuditCallback(ledger=ledger_path, devices="all", meter=gpu_meter, region="FR", pue=1.2,
                          price_per_gpu_hour=2.5).attach(study)
    run_every_state(study, audit)
    with Ledger.open(ledger_path) as store:
        recorded = {t.number: t for t in store.trials("numeric")}
        model = CarbonModel.from_record(store.get_sweep("numeric").attrs["settings"])
    trials = optuna.load_study(study_name="numeric", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "FAIL", "FAIL"]
    for trial in trials:
        record, attrs = recorded[trial.number], trial.user_attrs
        footprint = model.footprint(record.energy_kwh, record.gpu_hours)
        expected = {"auditor_energy_kwh": record.energy_kwh, "auditor_co2e_kg": footprint.co2e_kg,
                    "auditor_gpu_hours": record.gpu_hours, "auditor_cost_usd": record.gpu_hours * 2.5}
        assert {k: attrs[k] for k in NUMERIC} == expected, trial.number  # equal, not approximately
        assert all(type(attrs[k]) is float for k in NUMERIC)
        assert {k: attrs["auditor"][k.removeprefix("auditor_")] for k in NUMERIC} == expected
        assert record.energy["gpu"].method == "counter" and record.energy["gpu"].joules > 300.0 * 0.1
        assert attrs["auditor"]["region"] == "FR" and attrs["auditor"]["pue"] == 1.2
        assert attrs["auditor"]["methods"] == {d: r.method for d, r in record.energy.items()}


def test_without_a_price_there_is_no_cost_attribute(ledger_path: str) -> None:
    study = optuna.create_study(study_name="unpriced")
    audit = AuditCallback(ledger=ledger_path, devices=[]).attach(study)
    study.optimize(lambda t: burn(0.02) or t.suggest_float("x", 0, 1), n_trials=2, callbacks=[audit])
    audit.close()
    for trial in study.trials:
        assert {k for k in trial.user_attrs if k.startswith("auditor")} == set(NUMERIC[:3]) | {"auditor"}
        assert "cost_usd" not in trial.user_attrs["auditor"] and trial.user_attrs["auditor_energy_kwh"] > 0


def test_optuna_dashboard_sorts_and_plots_the_figures(tmp_path: Path, ledger_path: str, gpu_meter: Meter) -> None:
    """optuna-dashboard's own server, over the study's SQLite storage: its study API lists the
    numeric attributes as sortable (what its trial table sorts and its plots offer as targets)
    and gives back each trial's figure, as text that parses to the ledger's number exactly."""
    import json
    import threading
    import urllib.request
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from optuna_dashboard import wsgi

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="dashboard", storage=storage)
    audit = AuditCallback(ledger=ledger_path, devices="all", meter=gpu_meter, price_per_kwh=0.2).attach(study)
    run_every_state(study, audit)
    with Ledger.open(ledger_path) as store:
        energy = {t.number: t.energy_kwh for t in store.trials("dashboard")}

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = make_server("127.0.0.1", 0, wsgi(storage), handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        [listed] = json.load(urllib.request.urlopen(f"{base}/api/studies", timeout=10))["study_summaries"]
        detail = json.load(urllib.request.urlopen(f"{base}/api/studies/{listed['study_id']}", timeout=10))
    finally:
        server.shutdown()
        server.server_close()
    sortable = {a["key"]: a["sortable"] for a in detail["union_user_attrs"]}
    assert sortable == {**dict.fromkeys(NUMERIC, True), "auditor": False}
    assert len(detail["trials"]) == 4
    for trial in detail["trials"]:
        values = {a["key"]: a["value"] for a in trial["user_attrs"]}
        assert float(values["auditor_energy_kwh"]) == energy[trial["number"]] > 0
        assert json.loads(values["auditor"])["energy_kwh"] == energy[trial["number"]]
        own = study.trials[trial["number"]].user_attrs
        assert {k: float(values[k]) for k in NUMERIC} == {k: own[k] for k in NUMERIC}


def test_a_running_trials_heartbeat_carries_its_params_so_far(ledger_path: str, gpu_meter: Meter) -> None:
    """A search killed mid-trial leaves the trial's last heartbeat: it shows what was suggested."""
    study = optuna.create_study(study_name="beats", storage=f"sqlite:///{Path(ledger_path).parent / 'optuna.db'}")
    audit = AuditCallback(ledger=ledger_path, meter=gpu_meter).attach(study)
    audit.trials.recorder.heartbeat_s = 0.1  # type: ignore[union-attr]
    seen: list[dict] = []

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        layers = trial.suggest_int("layers", 1, 4)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not seen:
            with Ledger.open(ledger_path) as store:  # the sweep appears with the first heartbeat
                known = {t.number: t for t in store.trials("beats")} if store.get_sweep("beats") else {}
            running = known.get(trial.number)
            if running is not None and running.state is TrialState.RUNNING and len(running.params) == 2:
                seen.append(running.params)
            time.sleep(0.05)
        return x * layers

    study.optimize(objective, n_trials=1, callbacks=[audit])
    assert seen == [study.trials[0].params]  # Optuna's own record of the trial


def test_n_jobs_2_counts_nothing_twice(ledger_path: str, gpu_meter: Meter) -> None:
    study = optuna.create_study(study_name="threads")
    audit = AuditCallback(ledger=ledger_path, devices="all", meter=gpu_meter).attach(study)

    def objective(trial: optuna.Trial) -> float:
        time.sleep(trial.suggest_float("t", 0.05, 0.2))
        return 0.0

    before = gpu_meter.counter_deltas()["gpu:SIM-0"] - 0.0
    idle_before = gpu_meter.idle_joules()["gpu:SIM-0"]
    study.optimize(objective, n_trials=12, n_jobs=2, callbacks=[audit])
    audit.flush()
    gpu_meter.flush()
    trials = trials_of(ledger_path, "threads")
    assert sorted(trials) == list(range(12))
    attributed = sum(t.energy["gpu"].joules for t in trials.values())
    delta = gpu_meter.counter_deltas()["gpu:SIM-0"] - before
    idle = gpu_meter.idle_joules()["gpu:SIM-0"] - idle_before
    assert attributed + idle == pytest.approx(delta, rel=0.02)  # up to the tail still open at the last reading
    wall = sum(t.end_time - t.start_time for t in trials.values())
    assert attributed < 300.0 * wall  # overlapping threads share the GPU: less than each at full power


def test_ask_and_tell(ledger_path: str, gpu_meter: Meter) -> None:
    study = optuna.create_study(study_name="ask-tell")
    audit = AuditCallback(ledger=ledger_path, devices="all", meter=gpu_meter).attach(study)
    for _ in range(3):
        trial = study.ask()
        time.sleep(0.05)
        audit(study, study.tell(trial, trial.suggest_float("x", 0, 1)))
    audit.flush()
    assert sorted(trials_of(ledger_path, "ask-tell")) == [0, 1, 2]


def test_multi_objective(ledger_path: str, gpu_meter: Meter) -> None:
    study = optuna.create_study(study_name="multi", directions=["minimize", "maximize"])
    audit = AuditCallback(ledger=ledger_path, meter=gpu_meter)
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 2.0), n_trials=3, callbacks=[audit])
    audit.flush()
    trials = trials_of(ledger_path, "multi")
    assert trials[2].objective == [study.trials[2].values[0], 2.0]
    with Ledger.open(ledger_path) as store:
        assert store.get_sweep("multi").attrs["directions"] == ["minimize", "maximize"]


def test_resumed_study_continues_the_sweep_without_duplicates(tmp_path: Path, ledger_path: str, gpu_meter: Meter) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    for _ in range(2):
        study = optuna.create_study(study_name="resumed", storage=storage, load_if_exists=True)
        audit = AuditCallback(ledger=ledger_path, meter=gpu_meter)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3, callbacks=[audit])
        audit.flush()
    trials = trials_of(ledger_path, "resumed")
    assert sorted(trials) == list(range(6))
    with Ledger.open(ledger_path) as store:
        assert [s.name for s in store.sweeps()] == ["resumed"]


def test_sweep_name_and_project_ledger(ledger_path: str, gpu_meter: Meter) -> None:
    audit = AuditCallback(ledger=ledger_path, sweep="lr-search", meter=gpu_meter)
    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2, callbacks=[audit])
    audit.flush()
    assert len(trials_of(ledger_path, "lr-search")) == 2


def cpu_objective(seconds: float = 0.05):
    def objective(trial: optuna.Trial) -> float:
        burn(seconds)
        return trial.suggest_float("x", -1, 1) ** 2

    return objective


def test_stop_new_budget_stops_the_study_and_records_the_event(ledger_path: str, gpu_meter: Meter) -> None:
    """About a dozen trials of 0.05 s on a 300 W GPU (15 J each) fit a 180 J budget. The GPU
    draws far more than the CPU time of the process tree, which a session's leftover children
    (a local Ray) would otherwise make noisy."""
    budget_kwh = 180 / 3.6e6
    audit = AuditCallback(ledger=ledger_path, budget="180 J", region="DE", devices="all", meter=gpu_meter)
    study = optuna.create_study(study_name="budget")
    audit.attach(study)
    study.optimize(lambda trial: (time.sleep(0.05), trial.suggest_float("x", -1, 1) ** 2)[1], n_trials=500,
                   callbacks=[audit])
    audit.flush()
    assert audit.stopped_by_budget
    assert 3 <= len(study.trials) < 500
    with Ledger.open(ledger_path) as store:
        events = store.budget_events("budget")
        trials = store.trials("budget")
    stops = [e for e in events if e.action == "stop-new"]
    assert len(stops) == 1
    assert stops[0].metric == "energy_kwh" and stops[0].limit_value == pytest.approx(budget_kwh)
    assert stops[0].pue == pytest.approx(1.58) and stops[0].intensity_g_per_kwh == pytest.approx(380.9)
    assert any(e.action == "warn" for e in events)
    spent_kwh = sum(t.energy_kwh for t in trials)
    largest = max(t.energy_kwh for t in trials)
    assert spent_kwh <= budget_kwh + 2 * largest  # overshoot at most about one trial


def test_hard_budget_prunes_running_trials_and_marks_them(ledger_path: str, gpu_meter: Meter) -> None:
    audit = AuditCallback(ledger=ledger_path, budget="0.0001 GPUh", mode="hard", devices="all", meter=gpu_meter)
    study = optuna.create_study(study_name="hard")

    def objective(trial: optuna.Trial) -> float:
        for step in range(25 if trial.number == 0 else 200):  # trial 0 spends the budget first
            time.sleep(0.02)
            trial.report(float(step), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return 1.0

    study.optimize(objective, n_trials=50, n_jobs=2, callbacks=[audit])
    audit.flush()
    trials = trials_of(ledger_path, "hard")
    stopped = [t for t in trials.values() if t.stopped_by_budget]
    assert stopped and all(t.state is TrialState.PRUNED for t in stopped)
    assert len(study.trials) < 50
    with Ledger.open(ledger_path) as store:
        assert any(e.action == "stop-all" for e in store.budget_events("hard"))


def test_warn_budget_never_stops(ledger_path: str) -> None:
    audit = AuditCallback(ledger=ledger_path, budget="0.5 J".replace("0.5 J", "0.0000001 kWh"), mode="warn")
    study = optuna.create_study(study_name="warn")
    study.optimize(cpu_objective(0.02), n_trials=15, callbacks=[audit])
    audit.flush()
    assert len(study.trials) == 15 and not audit.stopped_by_budget
    with Ledger.open(ledger_path) as store:
        actions = [e.action for e in store.budget_events("warn")]
    assert actions and set(actions) == {"warn"}


def test_usd_budget_without_price_is_refused(ledger_path: str) -> None:
    with pytest.raises(ValueError, match="needs a price"):
        AuditCallback(ledger=ledger_path, budget="$5")


def test_bad_arguments_are_clear(ledger_path: str) -> None:
    with pytest.raises(Exception, match="unknown region 'Atlantis'"):
        AuditCallback(ledger=ledger_path, region="Atlantis")
    with pytest.raises(Exception, match="'panic' is not one of warn, stop-new, hard"):
        AuditCallback(ledger=ledger_path, budget="1 kg", mode="panic")


@pytest.mark.slow
def test_three_worker_processes_share_one_budget(tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger.db")
    storage = str(tmp_path / "journal.log")
    budget_j = 6.0
    workers = [
        subprocess.Popen(
            [sys.executable, str(HERE / "optuna_worker.py"), storage, ledger, "shared", f"{budget_j / 3.6e6} kWh", "0.05"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(3)
    ]
    outputs = [w.communicate(timeout=240) for w in workers]
    assert all(w.returncode == 0 for w in workers), [err for _, err in outputs]
    assert all("stopped_by_budget=True" in out for out, _ in outputs)
    storage_trials = optuna.load_study(
        study_name="shared",
        storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage)),
    ).trials
    finished = [t for t in storage_trials if t.state.is_finished()]
    trials = trials_of(ledger, "shared")
    assert sorted(trials) == sorted(t.number for t in finished)  # none lost, none doubled
    with Ledger.open(ledger) as store:
        assert store.count_trials("shared") == len(finished)
    energies = [t.energy_joules for t in trials.values()]
    overshoot = sum(energies) - budget_j
    assert overshoot <= 3 * max(energies), f"overshoot {overshoot:.3f} J with trials of {max(energies):.3f} J"
    assert not math.isnan(overshoot)


def test_demo_defaults_match_configs_demo_toml() -> None:
    import tomllib

    from auditor.integrations.demo import DEFAULTS

    shipped = tomllib.loads((HERE.parents[1] / "configs" / "demo.toml").read_text())
    assert shipped == DEFAULTS


def test_idle_energy_between_trials_is_recorded_apart(ledger_path: str, gpu_meter: Meter) -> None:
    study = optuna.create_study(study_name="idle")
    audit = AuditCallback(ledger=ledger_path, devices="all", meter=gpu_meter).attach(study)

    def objective(trial: optuna.Trial) -> float:
        time.sleep(0.1)
        return 0.0

    def pause(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        time.sleep(0.2)  # between trials: the GPU draws power, no trial holds it

    study.optimize(objective, n_trials=3, callbacks=[audit, pause])
    audit.flush()
    with Ledger.open(ledger_path) as store:
        [idle] = [t for t in store.trials("idle", include_idle=True) if t.state is TrialState.IDLE]
        assert store.count_trials("idle") == 3
    assert idle.energy["gpu"].joules > 300.0 * 0.2  # at least one pause at 300 W
    from auditor.model.carbon import CarbonModel
    from auditor.report.build import build_report

    with Ledger.open(ledger_path) as store:
        totals = build_report(store, CarbonModel())["totals"]
    assert totals["trials"] == 3 and totals["idle_kwh"] == pytest.approx(idle.energy_kwh)


def test_the_report_uses_the_region_pue_and_price_the_search_ran_with(ledger_path: str, gpu_meter: Meter, audit) -> None:
    """AuditCallback(region="FR") then `audit report`: France, not the world average (8x more)."""
    import json

    study = optuna.create_study(study_name="fr")
    callback = AuditCallback(ledger=ledger_path, devices="all", meter=gpu_meter, region="FR", pue=1.2,
                          price_per_kwh=0.3, budget="2 kg").attach(study)
    study.optimize(lambda t: time.sleep(0.2) or t.suggest_float("x", 0, 1), n_trials=3, callbacks=[callback])
    callback.close()
    report = json.loads(audit("--ledger", ledger_path, "report", "--format", "json").out)
    [sweep] = report["sweeps"]
    assert sweep["settings_from"] == "sweep" and sweep["region"]["code"] == "FR" and sweep["pue"]["value"] == 1.2
    assert report["region"]["code"] == "FR" and sweep["price"] == "$0.3 per kWh"
    kwh = report["totals"]["energy_kwh"]
    assert report["totals"]["co2e_kg"] == pytest.approx(kwh * 1.2 * callback.model.region.g_co2e_per_kwh / 1000, rel=1e-9)
    assert report["totals"]["cost_usd"] == pytest.approx(kwh * 1.2 * 0.3, rel=1e-9)
    # the budget's events record the same grid and PUE
    with Ledger.open(ledger_path) as store:
        assert all(e.intensity_g_per_kwh == callback.model.region.g_co2e_per_kwh and e.pue == 1.2 for e in store.budget_events())
    # --region and --pue recompute, and say so
    moved = json.loads(audit("--ledger", ledger_path, "report", "--format", "json", "--region", "PL", "--pue", "1.5").out)
    assert moved["sweeps"][0]["settings_from"] == "override" and moved["region"]["code"] == "PL"
    assert moved["totals"]["co2e_kg"] == pytest.approx(kwh * 1.5 * moved["region"]["g_co2e_per_kwh"] / 1000, rel=1e-9)
    table = " ".join(audit("--ledger", ledger_path, "report").out.split())
    assert "grid FR 56 g/kWh" in table and "no region set" not in table


def test_a_resumed_search_whose_budget_is_spent_runs_no_trial(tmp_path: Path, ledger_path: str) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="resumed", storage=storage)
    first = AuditCallback(ledger=ledger_path, budget="0.000001 kWh", devices=[]).attach(study)
    study.optimize(lambda t: burn(0.05) or t.suggest_float("x", 0, 1), n_trials=50, callbacks=[first])
    first.close()
    assert first.stopped_by_budget
    ran = len(study.trials)

    burned: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)  # a spent budget ends the trial here, before any work
        burned.append(trial.number)
        burn(0.05)
        return x

    study = optuna.load_study(study_name="resumed", storage=storage)
    again = AuditCallback(ledger=ledger_path, budget="0.000001 kWh", devices=[]).attach(study)
    study.optimize(objective, n_trials=5, callbacks=[again])
    again.close()
    assert burned == [] and len(study.trials) == ran + 1
    last = study.trials[-1]
    assert last.state is optuna.trial.TrialState.PRUNED
    record = trials_of(ledger_path, "resumed")[last.number]
    assert record.state is TrialState.PRUNED and record.stopped_by_budget and "stopped-by-budget" in record.flags


def test_a_study_name_longer_than_the_ledgers_columns_is_recorded(ledger_path: str, gpu_meter: Meter) -> None:
    """Optuna allows any length; the ledger's names are 255 characters: cut, with a hash."""
    name = "lr-search-" + "x" * 400
    study = optuna.create_study(study_name=name)
    audit = AuditCallback(ledger=ledger_path, meter=gpu_meter).attach(study)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing held back, nothing warned
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3, callbacks=[audit])
        audit.close()
    with Ledger.open(ledger_path) as store:
        [sweep] = store.sweeps()
        assert len(sweep.name) == 255 and sweep.name.startswith("lr-search-xxx")
        assert store.count_trials(sweep.name) == 3


@pytest.mark.parametrize(("budget", "price", "warned"), [
    ("0.1 GPUh", {}, "the 0.1 GPUh budget counts GPU-hours, and no GPU is in reach here"),
    ("$5", {"price_per_gpu_hour": 2.0}, "the $5 budget counts cost per GPU-hour, and no GPU is in reach here"),
    ("$5", {"price_per_kwh": 0.3}, None),
    ("1 kWh", {}, None),
    (None, {"price_per_gpu_hour": 2.0}, "the price is per GPU-hour ($2), and no GPU is in reach here: every trial costs $0"),
])
def test_a_budget_that_can_never_act_is_said_at_the_start(ledger_path: str, caplog: pytest.LogCaptureFixture,
                                                          budget: str | None, price: dict, warned: str | None) -> None:
    from auditor.meters.cpu import CpuTimeSource

    with Meter([CpuTimeSource()]) as cpu_only, caplog.at_level("WARNING", logger="auditor"):
        AuditCallback(ledger=ledger_path, budget=budget, meter=cpu_only, **price)
    said = [r.getMessage() for r in caplog.records if "no GPU is in reach" in r.getMessage()]
    assert said == ([] if warned is None else [said[0]]) and (warned is None or warned in said[0])


def test_a_gpu_hour_budget_with_a_gpu_in_reach_says_nothing(ledger_path: str, gpu_meter: Meter,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="auditor"):
        AuditCallback(ledger=ledger_path, budget="0.1 GPUh", meter=gpu_meter)
    assert not [r for r in caplog.records if "no GPU is in reach" in r.getMessage()]
