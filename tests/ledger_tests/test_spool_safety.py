"""Held-back files cannot be turned against the user (issue 18): only this user's files, in a
folder only this user can write, are replayed; nothing follows a symbolic link; a file that
cannot be replayed is set aside once and the report goes on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from auditor.errors import UnsafeSpoolError
from auditor.ledger import EnergyReading, Ledger, TrialRecord
from auditor.ledger.checks import record_to_json
from auditor.ledger.spool import Spool, _prefix, default_spool_dir, held_back, spool_problem
from auditor.ledger.writer import LedgerWriter

FORGED = TrialRecord(sweep="forged", trial_key="1", state="complete", start_time=1.0, end_time=2.0,
                     energy={"gpu": EnergyReading(3.6e9, "counter")})  # 1,000 kWh


def plant(location: str, folder: Path | None = None, record: TrialRecord = FORGED, mode: int = 0o600) -> Path:
    folder = folder or default_spool_dir()
    header = {"auditor_held_back": 1, "ledger": location, "host": "elsewhere", "pid": 7,
              "sweeps": {record.sweep: {"framework": "optuna", "attrs": {}}}}
    path = folder / f"{_prefix(location)}.elsewhere.7.1.jsonl"
    path.write_text(json.dumps(header) + "\n" + record_to_json(record) + "\n")
    path.chmod(mode)
    return path


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger:
        ledger.ensure_sweep("mine")
    return path, Ledger.location_of(path)


def _forged_in(path: Path) -> bool:
    with Ledger.open(path) as ledger:
        return ledger.get_sweep("forged") is not None and ledger.count_trials("forged") > 0


def test_a_file_planted_in_a_folder_others_can_write_is_not_replayed(project, audit) -> None:
    path, location = project
    default_spool_dir().mkdir(parents=True)
    default_spool_dir().chmod(0o777)  # a folder that existed with loose permissions
    plant(location)
    report = audit("--ledger", str(path), "report", "--format", "json")
    assert report.code == 0 and not _forged_in(path)
    assert report.err.count("\n") == 1 and f"chmod 700 {default_spool_dir()}" in report.err
    assert held_back(location) == 0 and "can be written by others" in (spool_problem() or "")
    doctor = audit("--ledger", str(path), "doctor")
    assert "can be written by others" in doctor.out


def test_a_folder_that_is_a_symbolic_link_is_not_used(project, tmp_path: Path) -> None:
    path, location = project
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    default_spool_dir().parent.mkdir(parents=True)
    default_spool_dir().symlink_to(elsewhere)
    plant(location, elsewhere)
    with pytest.warns(RuntimeWarning):
        writer = LedgerWriter("postgresql://nobody@127.0.0.1:1/none", "s", "optuna", timeout_s=1, retry_s=60)
        writer.write([TrialRecord(sweep="s", trial_key="1", state="complete", start_time=0.0)])
    assert writer.spool_path is not None and not writer.spool_path.exists()  # held in memory only
    assert len(list(elsewhere.iterdir())) == 1  # only the planted file: nothing written through the link
    with Ledger.open(path) as ledger:
        from auditor.ledger.spool import replay

        with pytest.raises(UnsafeSpoolError, match="is a symbolic link"):
            replay(ledger)
    assert not _forged_in(path)


@pytest.mark.parametrize("how", ["writable by others", "a symbolic link", "another user's"])
def test_a_file_that_is_not_this_users_own_is_not_replayed(project, tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture) -> None:
    path, location = project
    default_spool_dir().mkdir(parents=True, mode=0o700)
    if how == "writable by others":
        planted = plant(location, mode=0o666)
    elif how == "a symbolic link":
        target = plant(location, tmp_path)
        planted = default_spool_dir() / target.name
        planted.symlink_to(target)
    else:
        if os.getuid() != 0:  # as the fault tests: skipped on a laptop, a failure where CI=true
            if os.environ.get("CI") == "true":
                pytest.fail("giving a file to another user needs root; CI runs as root and must have it")
            pytest.skip("giving a file to another user needs root (CI runs as root)")
        planted = plant(location)
        os.chown(planted, 65534, 65534)
    with Ledger.open(path) as ledger:
        from auditor.ledger.spool import replay

        assert replay(ledger) == 0
    assert not _forged_in(path)
    assert planted.is_symlink() or planted.exists()  # left as it is
    assert "not replayed" in caplog.text


def test_the_temporary_file_is_never_a_planted_link(project, tmp_path: Path) -> None:
    _, location = project
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    spool = Spool(location)
    default_spool_dir().mkdir(parents=True, mode=0o700)
    spool.path.with_suffix(".tmp").symlink_to(victim)  # the name the temporary file had
    spool.keep([TrialRecord(sweep="s", trial_key="1", state="complete", start_time=0.0)], {"s": ("run", {})})
    assert victim.read_text() == "precious\n" and spool.path.is_file() and not spool.path.is_symlink()


def test_a_file_with_an_impossible_value_is_set_aside_once_and_the_report_goes_on(project, audit) -> None:
    path, location = project
    default_spool_dir().mkdir(parents=True, mode=0o700)
    bad = TrialRecord(sweep="forged", trial_key="1", state="complete", start_time=1.0, energy={"gpu": EnergyReading(5.0, "counter")})
    line = record_to_json(bad).replace('"joules": 5.0', '"joules": -5.0')
    planted = plant(location, record=bad)
    planted.write_text(planted.read_text().replace(record_to_json(bad), line))
    report = audit("--ledger", str(path), "report", "--format", "json")
    assert report.code == 0 and "unexpected" not in report.err
    assert not planted.exists()
    doctor = audit("--ledger", str(path), "doctor", "--format", "json")
    [aside] = json.loads(doctor.out)["ledger"]["set_aside"]
    assert aside["lines"] == 1 and "gpu energy -5.0 is not a finite number from 0 to 3.6e+15" in aside["why"][0]
    again = audit("--ledger", str(path), "report", "--format", "json")
    assert "set aside" not in again.err  # once
    dropped = audit("--ledger", str(path), "doctor", "--drop-set-aside")
    assert "deleted:" in dropped.out and list(default_spool_dir().iterdir()) == []
