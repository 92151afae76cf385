"""The ledger on real SQLite, PostgreSQL and MariaDB databases."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from auditor.errors import InvalidRecordError, LedgerError, SchemaTooNewError
from auditor.ledger import BudgetEvent, EnergyReading, Ledger, TrialRecord, TrialState
from auditor.ledger.schema import SCHEMA_VERSION
from auditor.ledger.store import MAX_TIMEOUT_S
from auditor.ledger.url import to_url


def make_trial(key: str, sweep: str = "lr-search", **overrides: object) -> TrialRecord:
    fields: dict[str, object] = {
        "sweep": sweep,
        "trial_key": key,
        "number": int(key) if key.isdigit() else None,
        "state": TrialState.COMPLETE,
        "start_time": 1_700_000_000.0,
        "end_time": 1_700_000_060.0,
        "params": {"lr": 0.01, "layers": 3, "opt": "adam"},
        "objective": [0.93],
        "devices": [{"index": 0, "uuid": "GPU-abc", "model": "NVIDIA H100 80GB HBM3"}],
        "gpu_seconds": 60.0,
        "energy": {"gpu": EnergyReading(36_000.0, "counter"), "cpu": EnergyReading(1_800.0, "estimate-tdp")},
    }
    fields.update(overrides)
    return TrialRecord(**fields)  # type: ignore[arg-type]


def test_round_trip_of_a_trial(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as ledger:
        sweep = ledger.ensure_sweep("lr-search", framework="optuna", attrs={"direction": "maximize"})
        assert sweep.framework == "optuna" and sweep.attrs == {"direction": "maximize"}
        record = make_trial("7", flags=["below-sensor-resolution"], is_final=True)
        ledger.record_trial(record)
        [stored] = ledger.trials("lr-search")
    assert stored.trial_key == "7" and stored.number == 7
    assert stored.state is TrialState.COMPLETE
    assert stored.params == record.params
    assert stored.objective == [0.93]
    assert stored.devices == record.devices
    assert stored.energy == record.energy
    assert stored.flags == ["below-sensor-resolution"]
    assert stored.is_final and not stored.stopped_by_budget
    assert stored.start_time == pytest.approx(record.start_time, abs=1e-6)
    assert stored.energy_joules == pytest.approx(37_800.0)


def test_the_longest_timeout_taken_still_records_on_every_backend(ledger_url: str) -> None:
    """MySQL's drivers refuse a socket timeout above a day: a larger ledger_timeout recorded nothing."""
    with Ledger.open(ledger_url, busy_timeout_s=MAX_TIMEOUT_S) as ledger:
        ledger.ensure_sweep("long", framework="optuna")
        ledger.record_trial(TrialRecord(sweep="long", trial_key="0", state="complete", start_time=0.0, end_time=1.0))
    with Ledger.open(ledger_url) as ledger:
        assert [t.trial_key for t in ledger.trials("long")] == ["0"]


def test_recording_a_trial_again_replaces_it(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as ledger:
        ledger.ensure_sweep("lr-search", "optuna")
        first = ledger.record_trial(make_trial("1", state=TrialState.RUNNING, end_time=None))
        again = ledger.record_trial(make_trial("1", state=TrialState.PRUNED))
        assert first == again
        [stored] = ledger.trials()
        assert stored.state is TrialState.PRUNED
        assert ledger.count_trials() == 1


def test_a_batch_replaces_running_rows_and_keeps_finished_ones(ledger_url: str) -> None:
    """One transaction a batch, whatever it holds: new trials, trials whose heartbeat row is in
    the ledger, several rows of one trial, and a late heartbeat of a finished trial."""
    with Ledger.open(ledger_url) as ledger:
        ledger.ensure_sweep("lr-search", "optuna")
        ledger.record_trials([make_trial("1", state=TrialState.RUNNING, gpu_seconds=5.0),
                              make_trial("2"), make_trial("3", state=TrialState.RUNNING)])
        ledger.record_trials([
            make_trial("1", state=TrialState.PRUNED, gpu_seconds=30.0),  # its heartbeat row is replaced
            make_trial("2", state=TrialState.RUNNING, gpu_seconds=1.0),  # a late heartbeat: ignored
            make_trial("4", state=TrialState.RUNNING, gpu_seconds=1.0),  # new, then ended in the same batch
            make_trial("4", gpu_seconds=40.0),
            make_trial("5", gpu_seconds=50.0),
            make_trial("5", state=TrialState.RUNNING, gpu_seconds=2.0),  # heartbeat after the end: ignored
        ])
        stored = {t.trial_key: t for t in ledger.trials()}
    assert {k: (t.state, t.gpu_seconds) for k, t in stored.items()} == {
        "1": (TrialState.PRUNED, 30.0), "2": (TrialState.COMPLETE, 60.0), "3": (TrialState.INTERRUPTED, 60.0),  # untouched (its heartbeat is old)
        "4": (TrialState.COMPLETE, 40.0), "5": (TrialState.COMPLETE, 50.0),
    }
    assert list(stored) == ["1", "2", "3", "4", "5"]  # a replaced row keeps its place


def test_usage_sums_energy_and_gpu_time_per_sweep_and_in_all(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as ledger:
        ledger.ensure_sweep("a", "optuna")
        ledger.ensure_sweep("b", "ray")
        for key in ("1", "2", "3"):
            ledger.record_trial(make_trial(key, sweep="a"))
        ledger.record_trial(make_trial("x", sweep="b", gpu_seconds=7200.0, energy={"gpu": EnergyReading(3.6e6, "counter")}))
        a = ledger.usage("a")
        whole = ledger.usage()
        empty = ledger.ensure_sweep("empty") and ledger.usage("empty")
    assert a.trials == 3
    assert a.energy_kwh == pytest.approx(3 * 37_800 / 3.6e6)
    assert a.gpu_hours == pytest.approx(3 * 60 / 3600)
    assert whole.trials == 4
    assert whole.energy_kwh == pytest.approx(3 * 37_800 / 3.6e6 + 1.0)
    assert whole.gpu_hours == pytest.approx(0.05 + 2.0)
    assert empty.trials == 0 and empty.energy_kwh == 0


def test_hostile_params_are_stored_and_read_back_as_they_were(ledger_url: str) -> None:
    params = {
        "html": "<script>alert('x')</script>",
        "sql": "'; DROP TABLE auditor_trials; --",
        "control": "a\x01b\tc\nd",
        "unicode": "µs ✓ 学习率",
        "nan": math.nan,
        "inf": math.inf,
        "big": "x" * 1_000_000,  # 1 MB
    }
    with Ledger.open(ledger_url) as ledger:
        ledger.ensure_sweep("s'; DROP TABLE x; --")
        ledger.record_trial(make_trial("0", sweep="s'; DROP TABLE x; --", params=params, objective=[math.nan]))
        [stored] = ledger.trials()
    assert math.isnan(stored.params.pop("nan"))
    assert stored.params.pop("inf") == math.inf
    assert stored.params == {k: v for k, v in params.items() if k not in ("nan", "inf")}
    assert stored.objective is None and stored.flags == ["objective-not-finite"]  # no NaN in the ledger (issue 19)


def test_budget_events(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as ledger:
        ledger.ensure_sweep("a")
        event = BudgetEvent(
            budget="2 kg", metric="co2e_kg", limit_value=2.0, scope="sweep", mode="stop-new",
            action="stop-new", spent=2.1, forecast=0.2, overshoot=0.1, reason="budget reached",
            sweep="a", intensity_g_per_kwh=380.9, pue=1.58,
        )
        ledger.record_budget_event(event)
        ledger.record_budget_event(BudgetEvent("5 kWh", "energy_kwh", 5, "project", "warn", "warn", 2.5, "50 %"))
        events = ledger.budget_events()
        assert ledger.budget_events("a") == [events[0]]
    assert events[0].sweep == "a" and events[0].overshoot == pytest.approx(0.1)
    assert events[0].intensity_g_per_kwh == pytest.approx(380.9)
    assert events[1].sweep is None


def test_sweeps_are_created_once(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as ledger:
        first = ledger.ensure_sweep("a", "optuna")
        second = ledger.ensure_sweep("a", "optuna")
        assert first.id == second.id
        assert [s.name for s in ledger.sweeps()] == ["a"]


def test_unknown_sweep_is_a_clear_error(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as ledger, pytest.raises(LedgerError, match="no sweep called 'nope'"):
        ledger.trials("nope")


def test_reopening_keeps_everything(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as ledger:
        ledger.ensure_sweep("a")
        ledger.record_trial(make_trial("1", sweep="a"))
    with Ledger.open(ledger_url) as ledger:
        assert ledger.schema_version == SCHEMA_VERSION
        assert ledger.count_trials("a") == 1


def test_a_ledger_from_a_newer_version_is_refused(ledger_url: str) -> None:
    Ledger.open(ledger_url).close()
    engine = create_engine(to_url(ledger_url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE auditor_meta SET value = '99' WHERE `key` = 'schema_version'"
                          if "mysql" in engine.dialect.name or "mariadb" in engine.dialect.name
                          else "UPDATE auditor_meta SET value = '99' WHERE key = 'schema_version'"))
    engine.dispose()
    with pytest.raises(SchemaTooNewError, match="schema 99, written by a newer auditor.*pip install -U hpo-auditor"):
        Ledger.open(ledger_url)


def test_sqlite_ledger_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "new" / ".auditor" / "ledger.db"
    with Ledger.open(path) as ledger:
        ledger.ensure_sweep("a")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_a_file_that_is_not_a_ledger(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database" * 100)
    with pytest.raises(LedgerError, match="is not a readable ledger .* move it aside"):
        Ledger.open(path)
    assert path.read_bytes().startswith(b"these are my notes")


def test_a_locked_ledger_times_out_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    Ledger.open(path).close()
    import sqlite3

    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with Ledger.open(path, busy_timeout_s=0.2) as ledger, pytest.raises(LedgerError, match="stayed locked by another process for more than 0.2 s"):
            ledger.ensure_sweep("a")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_server_that_does_not_answer(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="cannot reach the ledger at postgresql\\+psycopg://nobody:\\*\\*\\*@127.0.0.1:9/x"):
        Ledger.open("postgresql://nobody:secret@127.0.0.1:9/x", busy_timeout_s=2)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("", "empty ledger location"),
        ("oracle://u@h/db", "'oracle', which is not supported"),
        ("postgresql://u@h:notaport/db", "cannot read ledger URL"),
    ],
)
def test_bad_ledger_locations(target: str, message: str) -> None:
    with pytest.raises(LedgerError, match=message):
        Ledger.open(target)


def test_invalid_energy_is_refused_before_writing(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        ledger.ensure_sweep("lr-search")
        with pytest.raises(InvalidRecordError, match=r"trial 1 of sweep .lr-search.: gpu energy -1.0 is not a finite number from 0 to 3.6e\+15"):
            ledger.record_trial(make_trial("1", energy={"gpu": EnergyReading(-1.0, "counter")}))
        assert ledger.count_trials() == 0


def test_reservations_count_other_holders_and_are_released(ledger_url: str) -> None:
    from auditor.ledger import Usage

    seen: list[float] = []

    def under(limit_kwh: float):
        def decide(spent: Usage, held: Usage) -> bool:  # the trials' draw and the others' reservations, apart
            seen.append((spent.energy_kwh, held.energy_kwh))
            return spent.energy_kwh + held.energy_kwh + ahead.energy_kwh < limit_kwh

        return decide

    with Ledger.open(ledger_url) as ledger:
        ledger.ensure_sweep("lr-search")
        ledger.record_trial(make_trial("1"))  # 37.8 kJ spent = 0.0105 kWh
        ahead = Usage(0.01, 0.0, 1)
        assert ledger.reserve("lr-search", "worker-a", ahead, under(0.05))
        assert ledger.reserve("lr-search", "worker-b", ahead, under(0.05))
        assert seen[-1] == pytest.approx((0.0105, 0.01))  # b sees a's reservation, as held, not spent
        assert not ledger.reserve("lr-search", "worker-c", ahead, under(0.035))
        assert ledger.reserve("lr-search", "worker-a", ahead, under(0.05))  # a's own is not counted twice
        assert seen[-1] == pytest.approx((0.0105, 0.01))
        assert ledger.reserve("lr-search", "worker-a", ahead, under(0.05), mine=["worker-b"])  # b counted by the caller
        assert seen[-1] == pytest.approx((0.0105, 0.0))
        ledger.release("worker-b")
        assert ledger.reserve("lr-search", "worker-c", ahead, under(0.035))


def test_a_running_trial_whose_heartbeat_went_stale_reads_as_interrupted(tmp_path) -> None:
    import time

    now = time.time()
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        ledger.ensure_sweep("lr-search")
        ledger.record_trials([
            make_trial("0", state=TrialState.RUNNING, start_time=now - 600, end_time=now - 120),  # its process died
            make_trial("1", state=TrialState.RUNNING, start_time=now - 600, end_time=now - 3),  # still beating
        ])
        states = {t.trial_key: t.state for t in ledger.trials()}
        by_state = {a.state: a.trials for a in ledger.aggregate()}
    assert states == {"0": TrialState.INTERRUPTED, "1": TrialState.RUNNING}
    assert by_state == {"interrupted": 1, "running": 1}
