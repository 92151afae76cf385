"""The Optuna plugin on the storages users run (in memory, SQLite, PostgreSQL, MySQL, Journal): every
trial's figures are numeric user attributes equal to the ledger's, its constraint is Optuna's,
and on an RDB storage all of them are one transaction, with no read on the trial's path beyond
Optuna's own (issue 29: four writes and a read a trial nearly doubled Optuna's time)."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from auditor.integrations.optuna import AuditCallback
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from auditor.ledger import Ledger
from auditor.meters.sampler import Meter
from auditor.model.carbon import CarbonModel

optuna.logging.set_verbosity(optuna.logging.WARNING)
NUMERIC = ("auditor_energy_kwh", "auditor_co2e_kg", "auditor_gpu_hours", "auditor_cost_usd")


@pytest.fixture(params=["memory", "sqlite", "postgresql", "mysql", "journal"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    kind = request.param
    if kind == "memory":
        yield optuna.storages.InMemoryStorage()
    elif kind == "journal":
        yield JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    elif kind == "sqlite":
        yield RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    else:  # the test servers, a fresh database each (shared with no other test)
        url = request.getfixturevalue("postgres_url" if kind == "postgresql" else "mariadb_url")
        storage = RDBStorage(url)
        yield storage
        storage.engine.dispose()


class CountingCalls:
    """Counts the storage calls a search makes, by name (the storage stays the real one)."""

    def __init__(self, storage: object, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        backend = getattr(storage, "_backend", storage)
        for name in ("set_trial_user_attr", "set_trial_system_attr", "get_trial", "get_trial_params"):
            original = getattr(type(backend), name, None)
            if original is None:
                continue

            def counted(this, *args, _original=original, _name=name, **kwargs):
                self.calls[_name] += 1
                return _original(this, *args, **kwargs)

            monkeypatch.setattr(type(backend), name, counted)


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0, 1)
    if trial.number == 1:
        raise optuna.TrialPruned()
    return x


def test_figures_are_the_ledgers_and_one_transaction_on_rdb(storage, tmp_path: Path, gpu_meter: Meter,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = str(tmp_path / "ledger.db")
    study = optuna.create_study(study_name="stores", storage=storage)
    audit = AuditCallback(study, ledger=ledger, devices="all", meter=gpu_meter, region="FR", price_per_gpu_hour=2.0,
                          constraint="1 kWh")
    study.optimize(_objective, n_trials=2, callbacks=[audit])  # warm: the first trial reads the study's run once
    plain = CountingCalls(storage, monkeypatch)
    study.optimize(_objective, n_trials=4, callbacks=[audit])
    audit.close()
    with Ledger.open(ledger) as store:
        recorded = {t.number: t for t in store.trials("stores")}
        model = CarbonModel.from_record(store.get_sweep("stores").attrs["settings"])
    trials = study.get_trials()
    assert len(trials) == len(recorded) == 6
    for trial in trials:
        record, attrs = recorded[trial.number], trial.user_attrs
        footprint = model.footprint(record.energy_kwh, record.gpu_hours)
        expected = {"auditor_energy_kwh": record.energy_kwh, "auditor_co2e_kg": footprint.co2e_kg,
                    "auditor_gpu_hours": record.gpu_hours, "auditor_cost_usd": record.gpu_hours * 2.0}
        assert {k: attrs[k] for k in NUMERIC} == expected, trial.number
        assert all(type(attrs[k]) is float for k in NUMERIC)  # optuna-dashboard sorts and plots them
        assert trial.system_attrs["constraints:auditor"] == pytest.approx(record.energy_kwh - 1.0)
    if isinstance(getattr(storage, "_backend", storage), RDBStorage):
        # every figure of a trial in one transaction, and no read of the trial on the plugin's path
        assert plain.calls["set_trial_user_attr"] == 0 and plain.calls["set_trial_system_attr"] == 0
        assert plain.calls["get_trial_params"] == 0


def test_attributes_false_writes_no_user_attribute_but_keeps_the_constraint(tmp_path: Path, gpu_meter: Meter,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    storage = RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = optuna.create_study(study_name="lean", storage=storage)
    audit = AuditCallback(study, ledger=str(tmp_path / "l.db"), meter=gpu_meter, constraint="1 kWh", attributes=False)
    study.optimize(_objective, n_trials=3, callbacks=[audit])
    audit.close()
    with Ledger.open(tmp_path / "l.db") as store:
        recorded = {t.number: t for t in store.trials("lean")}
    for trial in study.get_trials():
        assert not any(key.startswith("auditor") for key in trial.user_attrs)
        assert trial.system_attrs["constraints:auditor"] == pytest.approx(recorded[trial.number].energy_kwh - 1.0)
