"""One bad record never stops the others (issue 19): bad held-back files and records are set
aside once, and every valid trial lands exactly once."""

from __future__ import annotations

import json
import math
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from auditor.integrations.optuna import AuditCallback
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.ledger import EnergyReading, Ledger, TrialRecord, TrialState
from auditor.ledger.checks import record_to_json
from auditor.ledger.spool import (
    Spool,
    _prefix,
    default_spool_dir,
    held_back,
    replay,
    set_aside_files,
)
from auditor.ledger.writer import LedgerWriter

optuna.logging.set_verbosity(optuna.logging.WARNING)


def trial(key: str, sweep: str = "s", state: str = "complete", joules: float = 10.0, **fields: object) -> TrialRecord:
    return TrialRecord(sweep=sweep, trial_key=key, state=state, number=int(key) if key.isdigit() else None,
                       start_time=1.0, end_time=2.0, gpu_seconds=1.0, energy={"gpu": EnergyReading(joules, "counter")},
                       **fields)  # type: ignore[arg-type]


def plant(location: str, lines: list[str], name: str = "otherhost.4242.1", header: dict | None = None) -> Path:
    """A spool file as a dead process on another machine would have left it."""
    folder = default_spool_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    head = header if header is not None else {"auditor_held_back": 1, "ledger": location, "host": "otherhost", "pid": 4242,
                                              "sweeps": {"s": {"framework": "optuna", "attrs": {}}}}
    path = folder / f"{_prefix(location)}.{name}.jsonl"
    path.write_text("\n".join([json.dumps(head), *lines]) + "\n")
    path.chmod(0o600)
    return path


def with_value(record: TrialRecord, **changes: object) -> str:
    data = json.loads(record_to_json(record))
    for key, value in changes.items():
        if key == "joules":
            data["energy"]["gpu"]["joules"] = value
        else:
            data[key] = value
    return json.dumps(data)


def test_a_held_back_file_with_a_string_for_a_number_does_not_stop_an_optuna_search_from_recording(tmp_path: Path) -> None:
    ledger_path = tmp_path / "ledger.db"
    location = Ledger.location_of(ledger_path)
    bad = plant(location, [with_value(trial("0", sweep="other"), joules="1e3")],
                header={"auditor_held_back": 1, "ledger": location, "host": "otherhost", "pid": 4242,
                        "sweeps": {"other": {"framework": "optuna", "attrs": {}}}})
    study = optuna.create_study(study_name="search")
    callback = AuditCallback(ledger=str(ledger_path))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5, callbacks=[callback])
    callback.close()
    with Ledger.open(ledger_path) as ledger:
        assert sorted(t.number for t in ledger.trials("search")) == [t.number for t in study.trials]  # all 5
        assert ledger.trials("other") == []
    assert not bad.exists()
    [aside] = set_aside_files(location)
    assert aside.lines == 1 and "gpu energy '1e3' is not a finite number from 0 to 3.6e+15" in aside.why[0]


def test_a_record_with_nan_energy_is_set_aside_alone_and_the_batch_is_written(tmp_path: Path) -> None:
    writer = LedgerWriter(str(tmp_path / "ledger.db"), "s", "optuna")
    good = [trial(str(i)) for i in range(1, 4)]
    assert writer.write([trial("0", joules=math.nan), *good]) is True
    assert writer.held == [] and writer.ledger.count_trials("s") == 3  # type: ignore[union-attr]
    assert writer.write([trial("4")]) is True and writer.ledger.count_trials("s") == 4  # later batches too  # type: ignore[union-attr]
    [aside] = set_aside_files(writer.ledger.location)  # type: ignore[union-attr]
    assert aside.lines == 1 and "gpu energy nan" in aside.why[0]


def test_replay_goes_on_after_a_bad_file_and_names_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    location = Ledger.location_of(tmp_path / "ledger.db")
    bad = plant(location, [with_value(trial("0"), joules=-5.0)], name="a-first.1.1")
    good = plant(location, [record_to_json(trial("1")), record_to_json(trial("2"))], name="b-second.1.1")
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        assert replay(ledger) == 2
        assert sorted(t.trial_key for t in ledger.trials("s")) == ["1", "2"]
    assert not bad.exists() and not good.exists()
    assert "a-first" in caplog.text and "gpu energy -5.0 is not a finite number from 0 to 3.6e+15" in caplog.text


def test_a_file_whose_pid_now_belongs_to_another_process_is_replayed(tmp_path: Path) -> None:
    location = Ledger.location_of(tmp_path / "ledger.db")
    header = {"auditor_held_back": 1, "ledger": location, "host": socket.gethostname(), "pid": 1,
              "process": "another-boot/12345", "sweeps": {"s": {"framework": "optuna", "attrs": {}}}}
    plant(location, [record_to_json(trial("1"))], header=header)
    assert held_back(location) == 1  # counted: PID 1 is alive, but it is not the process that wrote the file
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        assert replay(ledger) == 1


def test_a_file_of_a_live_owner_is_left_to_it(tmp_path: Path) -> None:
    location = Ledger.location_of(tmp_path / "ledger.db")
    Spool(location).keep([trial("1")], {"s": ("optuna", {})})  # this process: alive, same start time
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        assert replay(ledger) == 0
    assert held_back(location) == 0 and held_back(location, include_live=True) == 1


def test_a_held_back_record_never_replaces_a_finished_trial_that_differs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    location = Ledger.location_of(tmp_path / "ledger.db")
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        ledger.ensure_sweep("s", "optuna")
        ledger.record_trials([trial("1", joules=500.0), trial("2")])
    plant(location, [record_to_json(trial("1", state="failed", joules=0.0)),  # conflicts
                     record_to_json(trial("2")),  # the same as the ledger's: not a conflict
                     record_to_json(trial("2", state="running", joules=1.0)),  # an older heartbeat
                     record_to_json(trial("3"))])
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        replay(ledger)
        trials = {t.trial_key: t for t in ledger.trials("s")}
    assert trials["1"].state is TrialState.COMPLETE and trials["1"].energy_joules == 500.0
    assert trials["2"].state is TrialState.COMPLETE and "3" in trials
    [aside] = set_aside_files(location)
    assert aside.lines == 1 and aside.why == ["differs from the finished trial already in the ledger"]
    assert caplog.text.count("differs from the finished trial") == 1


@pytest.mark.parametrize("field, value", [
    ("gpu_seconds", -1.0), ("gpu_seconds", math.inf), ("start_time", math.nan), ("end_time", math.inf),
    ("joules", math.inf), ("objective", ["best"]), ("number", "7"), ("state", "exploded"), ("energy", {"gpu": {"kwh": 1}}),
])
def test_every_stored_value_is_checked(tmp_path: Path, field: str, value: object) -> None:
    location = Ledger.location_of(tmp_path / "ledger.db")
    plant(location, [with_value(trial("1"), **{field: value}), record_to_json(trial("2"))])
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        assert replay(ledger) == 1
        assert [t.trial_key for t in ledger.trials("s")] == ["2"]
    assert len(set_aside_files(location)) == 1


@pytest.mark.parametrize("field, value", [
    ("number", 2**63), ("number", -1), ("gpu_seconds", 10**400), ("joules", 1e300), ("start_time", 1e14),
    ("devices", [{}] * 70_000),
])
def test_values_out_of_range_are_set_aside_alone(ledger_url: str, field: str, value: object) -> None:
    """Before: 2**63 made SQLite's driver raise OverflowError and every report failed until the file was deleted."""
    location = Ledger.location_of(ledger_url)
    plant(location, [with_value(trial("1"), **{field: value}), record_to_json(trial("2"))])
    with Ledger.open(ledger_url) as ledger:
        assert replay(ledger) == 1
        assert [t.trial_key for t in ledger.trials("s")] == ["2"]
    [aside] = set_aside_files(location)
    assert aside.lines == 1 and field.replace("joules", "gpu energy") in aside.why[0]


def test_an_objective_beyond_a_double_keeps_the_trial_flagged(tmp_path: Path) -> None:
    """Before: a 401-digit integer objective raised OverflowError in every report."""
    location = Ledger.location_of(tmp_path / "ledger.db")
    plant(location, [with_value(trial("1"), objective=[10**400])])
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        assert replay(ledger) == 1
        [stored] = ledger.trials("s")
    assert stored.objective is None and "objective-not-finite" in stored.flags and stored.energy_joules == 10.0


def test_a_header_nested_too_deep_is_set_aside_and_the_next_file_lands(tmp_path: Path) -> None:
    """Before: a 100,000-deep JSON header raised RecursionError in every report and replay."""
    location = Ledger.location_of(tmp_path / "ledger.db")
    deep = plant(location, [record_to_json(trial("1"))], name="a-deep.1.1")
    deep.write_text('{"x": ' + "[" * 100_000 + "]" * 100_000 + "}\n" + record_to_json(trial("1")) + "\n")
    plant(location, [record_to_json(trial("2"))], name="b-good.1.1")
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        assert replay(ledger) == 1
        assert [t.trial_key for t in ledger.trials("s")] == ["2"]
    [aside] = set_aside_files(location)
    assert "no header line" in aside.why[0] and not deep.exists()


@pytest.mark.parametrize("attrs, kept", [
    ({"budget": {"metric": "kWh", "limit": 1.0, "scope": "sweep"}, "planned_trials": 20}, {"planned_trials": 20}),
    ({"budget": {"metric": "energy_kwh", "limit": 0, "scope": "sweep"}}, {}),
    ({"budget": "5 kg", "planned_trials": -3, "study": "s"}, {"study": "s"}),
    ({"planned_trials": 10**30, "directions": ["up"]}, {}),
])
def test_bad_budget_or_planned_trials_in_a_header_leave_the_sweep_without_them(
    tmp_path: Path, attrs: dict, kept: dict, caplog: pytest.LogCaptureFixture, audit: Callable[..., Any]
) -> None:
    """Before: a held-back sweep header's bad budget made every report fail (KeyError, ZeroDivisionError)."""
    ledger_path = tmp_path / "ledger.db"
    location = Ledger.location_of(ledger_path)
    plant(location, [record_to_json(trial("1")), record_to_json(trial("2"))],
          header={"auditor_held_back": 1, "ledger": location, "host": "otherhost", "pid": 4242,
                  "sweeps": {"s": {"framework": "optuna", "attrs": attrs}}})
    with Ledger.open(ledger_path) as ledger:
        assert replay(ledger) == 2
        assert ledger.get_sweep("s").attrs == kept  # type: ignore[union-attr]
    assert "written without attributes it should not hold" in caplog.text
    for format_ in ("json", "table", "markdown", "statement", "html", "csv"):  # every report reads it
        result = audit("--ledger", str(ledger_path), "report", "--format", format_)
        assert result.code == 0 and "unexpected" not in result.err, result.err


def test_a_nul_in_a_trials_name_host_or_run_is_kept_escaped_on_every_backend(ledger_url: str) -> None:
    """PostgreSQL's text cannot hold a NUL: before, such a trial was refused and set aside."""
    with Ledger.open(ledger_url) as ledger:
        ledger.ensure_sweep("s\x00weep")
        ledger.record_trials([trial("1", sweep="s\x00weep", name="n\x00", host="h\x00", run="r\x00")])
        [stored] = ledger.trials("s\x00weep")
    assert (stored.name, stored.host, stored.run) == ("n\\x00", "h\\x00", "r\\x00")


def test_bad_attributes_already_in_a_ledger_are_left_out_when_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        ledger.ensure_sweep("s", "optuna", attrs={"planned_trials": 5})
        with ledger._writer.begin() as conn:  # as an older version, or a damaged file, left it
            conn.exec_driver_sql("UPDATE auditor_sweeps SET checksum = NULL, attrs = '{\"planned_trials\": 0, \"budget\": []}'")
        assert ledger.get_sweep("s").attrs == {}  # type: ignore[union-attr]
        with ledger._writer.begin() as conn:
            conn.exec_driver_sql("UPDATE auditor_sweeps SET attrs = '{not json'")
        assert ledger.get_sweep("s").attrs == {}  # type: ignore[union-attr]
    assert "planned_trials 0 is not a whole number" in caplog.text and "do not read (JSONDecodeError)" in caplog.text


def test_a_non_finite_objective_keeps_the_trial_and_its_energy(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        ledger.ensure_sweep("s")
        ledger.record_trials([trial("1", objective=[math.inf])])
        [stored] = ledger.trials("s")
    assert stored.objective is None and "objective-not-finite" in stored.flags and stored.energy_joules == 10.0


# -- the property: whatever else the files hold, every valid trial lands exactly once ------------

junk = st.one_of(
    st.text(max_size=40),
    st.builds(json.dumps, st.dictionaries(st.sampled_from(["sweep", "trial_key", "state", "energy", "gpu_seconds", "x"]),
                                          st.one_of(st.none(), st.text(max_size=5), st.floats(), st.integers(), st.lists(st.integers())),
                                          max_size=6)),
)
confusions = st.sampled_from([("joules", "1e3"), ("joules", math.nan), ("gpu_seconds", -1), ("start_time", None),
                              ("state", 3), ("flags", "x"), ("params", [1]), ("trial_key", 5), ("is_final", "yes")])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    files=st.lists(st.tuples(st.integers(0, 3), st.lists(st.one_of(junk, confusions), max_size=4), st.booleans()), min_size=1, max_size=4),
    cut=st.integers(0, 200),
)
def test_random_truncated_and_type_confused_files_never_cost_a_valid_trial(tmp_path_factory: pytest.TempPathFactory, files, cut) -> None:
    folder = tmp_path_factory.mktemp("prop")
    os.environ["XDG_STATE_HOME"] = str(folder / "state")
    location = Ledger.location_of(folder / "ledger.db")
    expected: set[str] = set()
    number = 0
    for index, (valid_count, bad_lines, truncate) in enumerate(files):
        lines, keys = [], []
        for line_number in range(valid_count + len(bad_lines)):
            number += 1
            if line_number < valid_count:
                lines.append(record_to_json(trial(str(number))))
                keys.append(str(number))
            else:
                bad = bad_lines[line_number - valid_count]
                lines.append(with_value(trial(str(number)), **{bad[0]: bad[1]}) if isinstance(bad, tuple) else bad)
                keys.append(None)
        if truncate and lines:  # a torn last line (a kill mid-write of an older format): what is whole still counts
            lines[-1] = lines[-1][: len(lines[-1]) - 1 - cut % max(len(lines[-1]), 1)]
            keys[-1] = None
        expected |= {key for key in keys if key is not None}
        plant(location, lines, name=f"h{index}.1.1")
    writer = LedgerWriter(str(folder / "ledger.db"), "mine", "optuna")  # replays on opening
    own = [TrialRecord(sweep="mine", trial_key=str(i), state="complete", start_time=1.0) for i in range(3)]
    assert writer.write(own) is True
    stored = writer.ledger.trials("s")  # type: ignore[union-attr]
    assert [t.trial_key for t in writer.ledger.trials("mine")] == ["0", "1", "2"]  # type: ignore[union-attr]
    keys = [t.trial_key for t in stored]
    assert len(keys) == len(set(keys))  # none twice
    assert set(keys) == expected
    assert list(default_spool_dir().glob("*.jsonl")) == []  # nothing left to trip over the next time
    writer.ledger.close()  # type: ignore[union-attr]


# -- bounded: what a replay holds, says and refuses (issue 28, item 5) ----------------------------

def test_a_large_file_is_replayed_in_batches_and_every_trial_lands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is read a batch at a time (before: every file whole, four of 228 MiB took 2 GB;
    `python scripts/bench_spool_replay.py` measures it)."""
    import auditor.ledger.spool as spool
    monkeypatch.setattr(spool, "REPLAY_BATCH", 7)
    location = Ledger.location_of(tmp_path / "ledger.db")
    plant(location, [record_to_json(trial(str(i))) for i in range(50)] + ["junk"] + [record_to_json(trial("3"))])
    assert held_back(location) == 50
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        assert replay(ledger) == 50
        assert ledger.count_trials("s") == 50
    [aside] = set_aside_files(location)
    assert aside.lines == 1


def test_thousands_of_junk_files_are_said_in_a_few_lines(tmp_path: Path, caplog: pytest.LogCaptureFixture, audit: Callable[..., Any]) -> None:
    """Before: one warning per file (10,000 junk files, 10,000 lines)."""
    location = Ledger.location_of(tmp_path / "ledger.db")
    for index in range(300):
        plant(location, ["not a record"], name=f"junk{index:04}.1.1", header={"not": "a header"})
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        replay(ledger)
    said = [r for r in caplog.records if "set aside" in r.getMessage()]
    assert len(said) == 4 and "and 297 more held-back files set aside" in said[-1].getMessage()
    assert len(set_aside_files(location)) == 300
    doctor = audit("--ledger", str(tmp_path / "ledger.db"), "doctor")
    assert len(doctor.out.splitlines()) < 80 and "and 290 more set-aside files" in doctor.out  # (long paths fold)


def test_an_idle_row_replayed_after_an_outage_is_not_a_conflict(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Before: the sweep's idle row came back as a "conflict" set aside after every outage."""
    def idle(joules: float, at: float) -> TrialRecord:
        return TrialRecord(sweep="s", trial_key="idle/host/1", state="idle", start_time=1.0, end_time=at,
                           energy={"gpu": EnergyReading(joules, "counter")}, recorded_at=at)
    location = Ledger.location_of(tmp_path / "ledger.db")
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        ledger.ensure_sweep("s", "optuna")
        ledger.record_trials([idle(10.0, 100.0)])
    plant(location, [record_to_json(idle(25.0, 200.0))], name="a-newer.1.1")  # the flush the outage held back
    plant(location, [record_to_json(idle(5.0, 50.0))], name="b-older.1.1")  # an older one: it stands down
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        replay(ledger)
        [row] = ledger.trials("s", include_idle=True)
    assert row.energy_joules == 25.0
    assert set_aside_files(location) == [] and "differs" not in caplog.text


def test_replacing_rows_on_postgresql_prints_no_psycopg_pipeline_lines(postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Before: `error ignored terminating <psycopg.Pipeline ...>: pipeline aborted` once per heartbeat (387 in a run)."""
    with Ledger.open(postgres_url) as ledger:
        ledger.ensure_sweep("s")
        ledger.record_trials([trial(str(i), state="running") for i in range(3)])
        ledger.record_trials([trial(str(i)) for i in range(4)])  # three replace running rows
        assert ledger.count_trials("s") == 4
    assert "error ignored terminating" not in caplog.text


def test_a_dangling_symbolic_link_as_ledger_is_refused_not_followed(tmp_path: Path, audit: Callable[..., Any]) -> None:
    """Before: the ledger was created wherever the link pointed."""
    link = tmp_path / "ledger.db"
    link.symlink_to(tmp_path / "elsewhere" / "ledger.db")
    result = audit("--ledger", str(link), "report")
    assert result.code == 1 and "is a symbolic link to" in result.err and "which does not exist" in result.err
    with pytest.warns(RuntimeWarning, match="symbolic link"):  # the search goes on, its trials held back
        writer = LedgerWriter(str(link), "s", "optuna", retry_s=60.0)
        writer.write([trial("1")])
    assert writer.held and not (tmp_path / "elsewhere").exists()
    writer.close()
