"""A password or token given to the auditor is never printed, stored in a spool file or left
in a file others can read (issue 28): `audit config`, every error, the spool's header."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from auditor.ledger import TrialRecord
from auditor.ledger.spool import default_spool_dir
from auditor.ledger.writer import LedgerWriter

PASSWORD = "hunter2-secret"
URLS = [
    f"postgresql://me:{PASSWORD}@127.0.0.1:1/ml",  # in the URL's user part
    f"postgresql://me@127.0.0.1:1/ml?password={PASSWORD}",  # in its query string
    f"postgresql://me@127.0.0.1:1/ml?sslmode=require&sslpassword={PASSWORD}",
    f"postgresql://me:{PASSWORD}@127.0.0.1:port/ml",  # a URL that does not parse
]


@pytest.mark.parametrize("url", URLS)
def test_audit_config_and_errors_never_print_a_ledger_password(url: str, audit: Callable[..., Any]) -> None:
    for command in (["config"], ["config", "--format", "json"], ["report"], ["doctor"], ["sweeps"]):
        result = audit("--ledger", url, *command)
        assert PASSWORD not in result.out + result.err, (command, result.out + result.err)
    shown = audit("--ledger", url, "config", "--format", "json")
    assert "***" in json.loads(shown.out)["ledger"]["value"]


@pytest.mark.parametrize("url", URLS)
def test_a_spool_file_never_holds_the_password(url: str, tmp_path: Path) -> None:
    writer = LedgerWriter(url, "s", "optuna", timeout_s=1.0, retry_s=60.0)
    writer.write([TrialRecord(sweep="s", trial_key="0", state="complete", start_time=1.0, end_time=2.0)])
    files = list(default_spool_dir().glob("*.jsonl"))
    assert files, "the trial was held back"
    assert all(PASSWORD not in path.read_text() for path in files)
    writer.close()


def test_a_token_set_with_audit_config_is_written_readable_by_its_owner_only(
    audit: Callable[..., Any], clean_environment: Path
) -> None:
    """Before: `audit config set electricitymaps_token` wrote it into a file every user could read."""
    result = audit("config", "set", "electricitymaps_token", "em-secret-token")
    assert result.code == 0 and "em-secret-token" not in result.out and "readable by you only" in result.out
    path = clean_environment / "auditor.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert audit("config", "set", "region", "DE").code == 0  # a later change keeps it private
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    shown = audit("config")
    assert "em-secret-token" not in shown.out and "(set, hidden)" in shown.out


def test_a_file_without_secrets_keeps_an_ordinary_mode(audit: Callable[..., Any], clean_environment: Path) -> None:
    assert audit("config", "set", "region", "DE").code == 0
    assert stat.S_IMODE((clean_environment / "auditor.toml").stat().st_mode) & 0o044  # others may read a region
