"""Importing searches that ran before the auditor (real Optuna storages, a real Ray Tune
experiment directory, CodeCarbon's CSV) and exporting to CodeCarbon."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import optuna
import pytest

from auditor.imports.importers import CODECARBON_COLUMNS
from auditor.ledger import EnergyReading, Ledger, TrialRecord

optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_study(path: Path) -> str:
    storage = f"sqlite:///{path}"
    study = optuna.create_study(study_name="old-search", storage=storage)

    def objective(trial: optuna.Trial) -> float:
        time.sleep(0.05)
        if trial.number == 1:
            raise optuna.TrialPruned()
        return trial.suggest_float("x", 0, 1)

    study.optimize(objective, n_trials=4)
    return storage


def test_import_optuna_estimates_from_durations(audit, tmp_path: Path) -> None:
    storage = make_study(tmp_path / "optuna.db")
    ledger = tmp_path / "ledger.db"
    result = audit("import", "optuna", "--storage", storage, "--study", "old-search", "--gpu", "A100 SXM4",
                   "--count", "2", "--ledger", str(ledger))
    assert result.code == 0, result.err
    assert result.out.startswith("Sweep 'old-search' of ") and result.out.endswith(": 4 new trials imported\n")
    with Ledger.open(ledger) as store:
        trials = {t.number: t for t in store.trials("old-search")}
    assert trials[1].state.value == "pruned"
    duration = trials[0].end_time - trials[0].start_time
    assert trials[0].gpu_seconds == pytest.approx(2 * duration)
    assert trials[0].energy["gpu"].joules == pytest.approx(400 * 2 * duration)
    assert trials[0].energy["gpu"].method == "estimate-tdp" and "imported" in trials[0].flags
    again = audit("import", "optuna", "--storage", storage, "--study", "old-search", "--gpu", "A100 SXM4", "--ledger", str(ledger))
    assert "nothing new: every trial is in the ledger already" in again.out  # nothing doubled


def test_import_never_replaces_measured_records(audit, tmp_path: Path) -> None:
    storage = make_study(tmp_path / "optuna.db")
    ledger = tmp_path / "ledger.db"
    with Ledger.open(ledger) as store:
        store.ensure_sweep("old-search", "optuna")
        store.record_trial(TrialRecord(sweep="old-search", trial_key="old-search/0", number=0, state="complete",
                                       start_time=0, end_time=1, energy={"gpu": EnergyReading(123.0, "counter")}))
    audit("import", "optuna", "--storage", storage, "--study", "old-search", "--gpu", "T4", "--ledger", str(ledger))
    with Ledger.open(ledger) as store:
        trials = {t.number: t for t in store.trials("old-search")}
    assert trials[0].energy["gpu"] == EnergyReading(123.0, "counter") and len(trials) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--storage", "postgresql://nobody@127.0.0.1:9/x", "--study", "s", "--gpu", "T4"], "cannot read Optuna storage"),
        (["--storage", "STORAGE", "--study", "nope", "--gpu", "T4"], "no study called 'nope'"),
        (["--storage", "STORAGE", "--study", "old-search", "--gpu", "Voodoo"], "no device in the hardware table"),
    ],
)
def test_import_optuna_bad_input(audit, tmp_path: Path, args: list[str], message: str) -> None:
    storage = make_study(tmp_path / "optuna.db")
    args = [storage if a == "STORAGE" else a for a in args]
    result = audit("import", "optuna", *args, "--ledger", str(tmp_path / "l.db"))
    assert result.code != 0 and message in result.err and result.err.count("\n") == 1


@pytest.mark.slow
def test_import_ray_experiment_directory(audit, tmp_path: Path, ray_session: None) -> None:
    from ray import tune

    def train(config: dict) -> None:
        for step in range(3):
            time.sleep(0.05)
            tune.report({"loss": config["lr"] * step})
        if config["lr"] > 0.5:
            raise ValueError("diverged")

    tuner = tune.Tuner(
        train, param_space={"lr": tune.grid_search([0.1, 0.2, 0.9])},
        run_config=tune.RunConfig(name="exp", storage_path=str(tmp_path / "ray_results"), verbose=0),
    )
    tuner.fit()
    experiment = tmp_path / "ray_results" / "exp"
    bare = audit("import", "ray", str(experiment), "--ledger", str(tmp_path / "l.db"))  # run without with_audit
    assert bare.code == 0 and "3 trials have no energy" in bare.err  # not a silent 0 kWh
    result = audit("import", "ray", str(experiment), "--gpu", "T4", "--ledger", str(tmp_path / "l.db"))
    assert result.code == 0, result.err
    assert "0 new trials imported, 3 updated" in result.out  # the draw fills what the first import could not
    with Ledger.open(tmp_path / "l.db") as store:
        trials = store.trials("exp")
    assert len(trials) == 3
    states = sorted(t.state.value for t in trials)
    assert states == ["complete", "complete", "failed"]
    assert all(t.energy["gpu"].method == "estimate-tdp" for t in trials)
    assert {t.params["lr"] for t in trials} == {0.1, 0.2, 0.9}


@pytest.mark.slow
def test_import_ray_reads_the_figures_of_an_audited_experiment(audit, tmp_path: Path, ray_session: None) -> None:
    """Reports every 2 ms: the last result on disk has no figures of its own (they come at most
    every 0.1 s); the import takes the latest result on disk that has them."""
    from auditor.integrations.ray_tune import AuditLoggerCallback, with_audit
    from ray import tune

    def train(config: dict) -> None:
        for step in range(100):
            time.sleep(0.002)
            tune.report({"step": step})

    grid = tune.Tuner(
        tune.with_resources(with_audit(train), {"cpu": 1, "gpu": 1}), param_space={"lr": tune.grid_search([0.1, 0.2])},
        run_config=tune.RunConfig(name="audited", storage_path=str(tmp_path / "ray_results"), verbose=0,
                                  callbacks=[AuditLoggerCallback(ledger=str(tmp_path / "live.db"))]),
    ).fit()
    result = audit("import", "ray", str(tmp_path / "ray_results" / "audited"), "--ledger", str(tmp_path / "l.db"))
    assert result.code == 0, result.err
    with Ledger.open(tmp_path / "l.db") as store:
        imported = {t.trial_key: t for t in store.trials("audited")}
    assert len(imported) == 2
    with Ledger.open(tmp_path / "live.db") as store:
        live = {t.trial_key: t for t in store.trials("audited")}
    for trial_result in grid:
        trial = imported[trial_result.metrics["trial_id"]]
        on_disk = trial_result.metrics_dataframe.dropna(subset=["auditor/energy_kwh"]).iloc[-1]
        assert trial.energy["gpu"].joules == on_disk["auditor/gpu_energy_j"] > 0
        assert trial.gpu_seconds == on_disk["auditor/gpu_seconds"] > 0
        assert trial.energy_kwh <= live[trial.trial_key].energy_kwh  # up to its last figures, not after


def test_import_ray_bad_directory(audit, tmp_path: Path) -> None:
    result = audit("import", "ray", str(tmp_path), "--ledger", str(tmp_path / "l.db"))
    assert result.code == 2 and "holds no Ray Tune trial" in result.err


def write_emissions(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CODECARBON_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({column: row.get(column, "") for column in CODECARBON_COLUMNS})


def test_codecarbon_import_and_export_round_trip(audit, tmp_path: Path) -> None:
    emissions = tmp_path / "emissions.csv"
    write_emissions(emissions, [
        {"timestamp": "2026-11-20T10:00:00", "project_name": "bert", "run_id": "r1", "duration": "3600",
         "cpu_energy": "0.1", "gpu_energy": "0.5", "ram_energy": "0.02", "gpu_count": "1", "gpu_model": "T4"},
        {"timestamp": "2026-11-20T12:00:00", "project_name": "bert", "run_id": "r2", "duration": "1800",
         "cpu_energy": "0.05", "gpu_energy": "0.25", "ram_energy": "0.01", "gpu_count": "1", "gpu_model": "T4"},
    ])
    ledger = str(tmp_path / "l.db")
    result = audit("import", "codecarbon", str(emissions), "--ledger", ledger)
    assert result.code == 0 and result.out.startswith("Sweep 'bert' of ") and ": 2 new runs imported" in result.out
    with Ledger.open(ledger) as store:
        usage = store.usage("bert")
    assert usage.energy_kwh == pytest.approx(0.93) and usage.gpu_hours == pytest.approx(1.5)
    out = tmp_path / "export.csv"
    result = audit("export", "codecarbon", "--out", str(out), "--ledger", ledger, "--region", "DE", "--pue", "1.0")
    assert result.code == 0 and "2 trials written" in result.out
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == CODECARBON_COLUMNS
    assert sum(float(r["energy_consumed"]) for r in rows) == pytest.approx(0.93)
    assert float(rows[0]["emissions"]) == pytest.approx(0.62 * 0.3809)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,b\n1,2\n", "is not a CodeCarbon emissions.csv: no column"),
        (",".join(CODECARBON_COLUMNS) + "\n" + "yesterday" + "," * (len(CODECARBON_COLUMNS) - 1) + "\n", "line 2: timestamp 'yesterday' is not a date"),
    ],
)
def test_corrupt_codecarbon_csv(audit, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "emissions.csv"
    path.write_text(content)
    result = audit("import", "codecarbon", str(path), "--ledger", str(tmp_path / "l.db"))
    assert result.code == 2 and message in result.err


def test_corrupt_codecarbon_number(audit, tmp_path: Path) -> None:
    path = tmp_path / "emissions.csv"
    write_emissions(path, [{"timestamp": "2026-11-20T10:00:00", "duration": "10", "cpu_energy": "lots", "gpu_energy": "0", "ram_energy": "0"}])
    result = audit("import", "codecarbon", str(path), "--ledger", str(tmp_path / "l.db"))
    assert result.code == 2 and "line 2: cpu_energy 'lots' is not a number" in result.err


def test_a_gpu_count_beyond_any_trial_is_refused_before_it_is_built(audit, tmp_path: Path) -> None:
    """Before: gpu_count 3e7 built 30 million device entries (2.8 GB) before anything said no."""
    path = tmp_path / "emissions.csv"
    write_emissions(path, [{"timestamp": "2026-11-20T10:00:00", "duration": "10", "cpu_energy": "0", "gpu_energy": "0.1",
                            "ram_energy": "0", "gpu_count": "3e7"}])
    result = audit("import", "codecarbon", str(path), "--ledger", str(tmp_path / "l.db"))
    assert result.code == 2 and "line 2: gpu_count '3e7' is more than the 65,536 GPUs one trial may have" in result.err


def test_missing_codecarbon_file(audit, tmp_path: Path) -> None:
    result = audit("import", "codecarbon", str(tmp_path / "nope.csv"), "--ledger", str(tmp_path / "l.db"))
    assert result.code == 2 and "no file" in result.err


def test_a_maximize_study_keeps_its_direction(audit, tmp_path: Path) -> None:
    """The best trial of a maximize study is its highest: the report's final run and ratio use it."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="acc", storage=storage, direction="maximize")
    study.optimize(lambda t: time.sleep(0.02) or t.suggest_float("x", 0, 1), n_trials=5)
    ledger = str(tmp_path / "l.db")
    assert audit("import", "optuna", "--storage", storage, "--study", "acc", "--gpu", "T4", "--ledger", ledger).code == 0
    import json

    report = json.loads(audit("report", "--ledger", ledger, "--format", "json").out)
    assert report["final_run"]["name"] == f"acc/{study.best_trial.number}"  # the highest, not the lowest
    assert report["final_run"]["kind"] == "best trial"


def test_a_study_imported_without_a_draw_says_its_energy_is_missing_and_a_later_draw_fills_it(audit, tmp_path: Path) -> None:
    storage = make_study(tmp_path / "optuna.db")
    ledger = str(tmp_path / "l.db")
    first = audit("import", "optuna", "--storage", storage, "--study", "old-search", "--ledger", ledger)
    assert first.code == 0 and "4 new trials" in first.out
    assert "4 trials have no energy" in first.err and "--gpu MODEL or --watts W" in first.err
    with Ledger.open(ledger) as store:
        assert all("energy-missing" in t.flags and t.energy_kwh == 0 for t in store.trials("old-search"))
    cpu = audit("import", "optuna", "--storage", storage, "--study", "old-search", "--watts", "65", "--count", "0",
                "--ledger", ledger)
    assert cpu.code == 0 and "0 new trials imported, 4 updated (energy estimated now" in cpu.out and cpu.err == ""
    with Ledger.open(ledger) as store:
        trials = store.trials("old-search")
    for trial in trials:
        assert trial.energy["cpu"].joules == pytest.approx(65 * (trial.end_time - trial.start_time))
        assert trial.gpu_seconds == 0 and "energy-missing" not in trial.flags
    again = audit("import", "optuna", "--storage", storage, "--study", "old-search", "--gpu", "T4", "--ledger", ledger)
    assert "nothing new: every trial is in the ledger already" in again.out  # an estimate never replaces another
    report = json.loads(audit("report", "--ledger", ledger, "--format", "json").out)
    assert report["totals"]["trials_without_energy"] == 0 and report["totals"]["energy_kwh"] > 0
    assert "no energy" not in audit("report", "--ledger", ledger).out


@pytest.mark.parametrize(("args", "message"), [
    (["--gpu", "T4", "--watts", "300"], "give the GPU model (--gpu) or the draw (--watts), not both"),
    (["--gpu", "T4", "--count", "0"], "--count 0 means no GPU"),
])
def test_import_draw_is_one_clear_choice(audit, tmp_path: Path, args: list[str], message: str) -> None:
    storage = make_study(tmp_path / "optuna.db")
    result = audit("import", "optuna", "--storage", storage, "--study", "old-search", *args, "--ledger", str(tmp_path / "l.db"))
    assert result.code == 2 and message in result.err and result.err.count("\n") == 1


def test_export_then_import_codecarbon_gives_back_the_same_energy_states_and_co2e(audit, tmp_path: Path) -> None:
    import json

    from auditor.model.carbon import CarbonModel
    from auditor.model.regions import resolve_region

    ledger, again = str(tmp_path / "l.db"), str(tmp_path / "again.db")
    with Ledger.open(ledger) as store:
        store.ensure_sweep("s", "optuna", attrs={"settings": CarbonModel(resolve_region("DE"), pue=1.48).to_record()})
        for i, state in enumerate(["complete", "pruned", "failed", "stopped"]):
            store.record_trial(TrialRecord(sweep="s", trial_key=f"s/{i}", number=i, state=state, start_time=1.7e9 + i * 100,
                                           end_time=1.7e9 + i * 100 + 60, gpu_seconds=60, devices=[{"index": 0, "model": "T4"}],
                                           energy={"gpu": EnergyReading(1e5 * (i + 1), "counter"),
                                                   "cpu": EnergyReading(2e4, "estimate-tdp")}))
    out = tmp_path / "emissions.csv"
    assert audit("export", "codecarbon", "--out", str(out), "--ledger", ledger).code == 0
    rows = list(csv.DictReader(out.open()))
    assert {r["country_iso_code"] for r in rows} == {"DEU"} and {r["pue"] for r in rows} == {"1.48"}
    assert float(rows[0]["energy_consumed"]) == pytest.approx(1.48 * (1e5 + 2e4) / 3.6e6)  # as CodeCarbon: with PUE
    assert audit("import", "codecarbon", str(out), "--ledger", again).code == 0
    before = json.loads(audit("report", "--ledger", ledger, "--format", "json").out)["totals"]
    after = json.loads(audit("report", "--ledger", again, "--format", "json").out)["totals"]
    for key in ("energy_kwh", "facility_kwh", "co2e_kg", "gpu_hours"):
        assert after[key] == pytest.approx(before[key], rel=1e-6), key
    assert after["trials_by_state"] == before["trials_by_state"] == {"complete": 1, "pruned": 1, "failed": 1, "stopped": 1}


def test_import_optuna_charges_overlapping_n_jobs_trials_the_machine_once(audit, tmp_path: Path) -> None:
    """Two n_jobs threads: each trial was charged the whole machine's --watts (91 mWh where the
    machine could draw 49); now the trials share it, and their sum is at most the machine's."""
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="threads", storage=storage)
    study.optimize(lambda t: (time.sleep(0.2), t.suggest_float("x", 0, 1))[1], n_trials=8, n_jobs=2)
    result = audit("import", "optuna", "--storage", storage, "--study", "threads", "--watts", "100", "--count", "0",
                   "--ledger", str(tmp_path / "l.db"))
    assert result.code == 0, result.err
    with Ledger.open(tmp_path / "l.db") as store:
        trials = store.trials("threads")
    busy = min(t.start_time for t in trials), max(t.end_time for t in trials)
    total = sum(t.energy_joules for t in trials)
    assert total <= 100 * (busy[1] - busy[0]) * (1 + 1e-9)
    assert total == pytest.approx(100 * (busy[1] - busy[0]), rel=0.1)  # the machine was busy throughout
    assert any("machine-shared" in t.flags for t in trials)


@pytest.mark.slow
def test_import_ray_records_trials_a_scheduler_stopped_as_stopped_with_max_t(audit, tmp_path: Path, ray_session: None) -> None:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    def train(config: dict) -> None:
        for step in range(8):
            tune.report({"loss": config["x"] * (8 - step)})

    scheduler = ASHAScheduler(metric="loss", mode="min", max_t=8, grace_period=1, reduction_factor=2)
    grid = tune.Tuner(train, param_space={"x": tune.grid_search([0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9])},
                      tune_config=tune.TuneConfig(scheduler=scheduler, max_concurrent_trials=1),
                      run_config=tune.RunConfig(name="asha", storage_path=str(tmp_path / "ray_results"), verbose=0)).fit()
    ran = {r.metrics["x"] if "x" in r.metrics else r.config["x"]: r.metrics["training_iteration"] for r in grid}
    cut = sum(1 for iterations in ran.values() if iterations < 8)
    assert cut > 0  # ASHA cut some short (Ray's own record)
    experiment = str(tmp_path / "ray_results" / "asha")
    plain = audit("import", "ray", experiment, "--watts", "50", "--count", "0", "--ledger", str(tmp_path / "l.db"))
    assert f"{cut} trials ended before 8 iterations" in plain.err and "--max-t 8" in plain.err
    again = audit("import", "ray", experiment, "--watts", "50", "--count", "0", "--max-t", "8", "--ledger", str(tmp_path / "l.db"))
    assert again.code == 0, again.err
    with Ledger.open(tmp_path / "l.db") as store:
        states = sorted(t.state.value for t in store.trials("asha"))
    assert states.count("stopped") == cut and states.count("complete") == len(ran) - cut


def test_a_codecarbon_row_without_energy_is_counted_missing_not_a_zero_run(audit, tmp_path: Path) -> None:
    emissions = tmp_path / "emissions.csv"
    write_emissions(emissions, [
        {"timestamp": "2026-11-20T10:00:00", "project_name": "bert", "run_id": "r1", "duration": "100", "emissions": "0.0056",
         "cpu_energy": "0.05", "gpu_energy": "0.04", "ram_energy": "0.01", "pue": "1.0"},
        {"timestamp": "2026-11-20T11:00:00", "project_name": "bert", "run_id": "r2", "duration": "100", "emissions": "0.0056",
         "cpu_energy": "", "gpu_energy": "", "ram_energy": ""},  # its emissions, no energy: left out of the grid's figure
    ])
    ledger = str(tmp_path / "l.db")
    result = audit("import", "codecarbon", str(emissions), "--ledger", ledger)
    assert result.code == 0 and "1 run has no energy figure" in result.err
    with Ledger.open(ledger) as store:
        trials = {t.trial_key.split("@")[0]: t for t in store.trials("bert")}
    assert trials["r2"].energy == {} and "energy-missing" in trials["r2"].flags
    assert "energy-missing" not in trials["r1"].flags
    report = json.loads(audit("report", "--ledger", ledger, "--format", "json").out)
    assert report["totals"]["trials_without_energy"] == 1
    header = audit("report", "--ledger", ledger).out.splitlines()[0]
    assert "grid codecarbon 56 g/kWh (CodeCarbon's figure, read from emissions.csv)" in header  # its grid, said once
    assert report["totals"]["co2e_kg"] == pytest.approx(0.0056)  # CodeCarbon's own figure for the run with energy
    assert "empty in the CodeCarbon file" in audit("report", "--ledger", ledger).out


def test_import_optuna_from_a_mistyped_sqlite_path_creates_no_file(audit, tmp_path: Path) -> None:
    typo = tmp_path / "typo.db"
    result = audit("import", "optuna", "--storage", f"sqlite:///{typo}", "--study", "s", "--gpu", "T4",
                   "--ledger", str(tmp_path / "l.db"))
    assert result.code == 2 and f"no Optuna storage at {typo} (no such file)" in result.err
    assert not typo.exists()
