"""Held-back trials: the spool file, its replay by another process, and the writer that uses it."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from auditor.ledger import EnergyReading, Ledger, TrialRecord, TrialState
from auditor.ledger.spool import Spool, default_spool_dir, held_back, replay, set_aside_files
from auditor.ledger.writer import LedgerWriter

DEAD_PROCESS_SPOOLS = """
import math, sys
from auditor.ledger import EnergyReading, TrialRecord
from auditor.ledger.spool import Spool
records = [TrialRecord(sweep="s", trial_key=str(i), state=state, number=i, start_time=0.0, end_time=1.0,
                       params={"html": "<script>x</script>", "nan": math.nan, "big": "x" * 10000},
                       energy={"gpu": EnergyReading(100.0 + i, "counter")})
           for i, state in [(0, "complete"), (1, "running"), (1, "complete"), (2, "pruned")]]
Spool(sys.argv[1]).keep(records, {"s": ("optuna", {"study": "s"})})
"""


def test_trials_a_dead_process_held_back_are_written_by_the_next_to_open_the_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    location = Ledger.location_of(path)
    subprocess.run([sys.executable, "-c", DEAD_PROCESS_SPOOLS, location], check=True)
    assert held_back(location) == 3 and len(list(default_spool_dir().iterdir())) == 1  # trial 1's heartbeat counts once
    [spooled] = default_spool_dir().iterdir()
    assert spooled.stat().st_mode & 0o777 == 0o600 and default_spool_dir().stat().st_mode & 0o777 == 0o700  # owner only
    with Ledger.open(path) as ledger:
        assert replay(ledger) == 3
        trials = {t.trial_key: t for t in ledger.trials("s")}
        assert ledger.get_sweep("s").attrs == {"study": "s"}  # type: ignore[union-attr]
    assert [trials[k].state for k in "012"] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    assert trials["1"].energy["gpu"] == EnergyReading(101.0, "counter")
    assert math.isnan(trials["0"].params["nan"]) and trials["0"].params["html"] == "<script>x</script>"
    assert held_back(location) == 0 and list(default_spool_dir().iterdir()) == []


def test_a_live_process_keeps_its_own_spool_file_and_an_unreadable_one_is_set_aside_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    location = Ledger.location_of(tmp_path / "ledger.db")
    Spool(location).keep([TrialRecord(sweep="s", trial_key="1", state="complete", start_time=0.0)], {"s": ("run", {})})
    stray = default_spool_dir() / f"{Spool(location).path.name.split('.')[0]}.host.1.1.jsonl"
    stray.write_text("not json\n")
    stray.chmod(0o600)
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        assert replay(ledger) == 0  # this process writes its own; the stray file is not one
        assert ledger.count_trials() == 0
    assert held_back(location) == 0 and held_back(location, include_live=True) == 1
    assert not stray.exists() and "set aside" in caplog.text and "not a file of held-back trials" in caplog.text
    [aside] = set_aside_files(location)
    assert aside.why == ["not a file of held-back trials (no header line)"] and aside.lines == 1
    caplog.clear()
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        assert replay(ledger) == 0
    assert "set aside" not in caplog.text  # once, not on every command


def test_a_running_heartbeat_never_replaces_a_finished_trial(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        ledger.ensure_sweep("s")
        done = TrialRecord(sweep="s", trial_key="1", state="complete", start_time=0.0, end_time=10.0)
        late = TrialRecord(sweep="s", trial_key="1", state="running", start_time=0.0, end_time=5.0, flags=["heartbeat"])
        ledger.record_trials([done])
        ledger.record_trials([late])
        [trial] = ledger.trials("s")
    assert trial.state is TrialState.COMPLETE and trial.end_time == 10.0


def test_a_writer_whose_ledger_never_answers_holds_trials_on_disk(tmp_path: Path) -> None:
    unreachable = "postgresql://nobody@127.0.0.1:1/none"  # nothing listens on port 1
    with pytest.warns(RuntimeWarning, match="held back, ledger .* not written: cannot reach the ledger"):
        writer = LedgerWriter(unreachable, "s", "optuna", timeout_s=1, retry_s=60)
        record = TrialRecord(sweep="s", trial_key="1", state="complete", start_time=0.0)
        assert writer.write([record]) is False
    assert writer.ledger is None and writer.held == [record]
    assert held_back(Ledger.location_of(unreachable), include_live=True) == 1
    writer.close()
    assert held_back(Ledger.location_of(unreachable), include_live=True) == 1  # kept for the next process


def test_doctor_counts_held_back_trials_and_the_next_listing_writes_them(tmp_path: Path, audit) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(path):
        pass
    subprocess.run([sys.executable, "-c", DEAD_PROCESS_SPOOLS, Ledger.location_of(path)], check=True)
    doctor = audit("--ledger", str(path), "doctor", "--format", "json")
    assert json.loads(doctor.out)["ledger"]["held_back_trials"] == 3  # trial 1 once: its heartbeat and its end
    listing = audit("--ledger", str(path), "trials", "s", "--format", "json")
    assert listing.code == 0 and "3 trials held back by an earlier search now written" in listing.err
    assert len(json.loads(listing.out)) == 3  # trial 1's heartbeat and its end are one trial
