"""Commands that only read never create a ledger: a typo in --ledger is an error, not a new,
empty ledger that reports zero."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from auditor.ledger import Ledger

READERS = [["report"], ["report", "--format", "json"], ["sweeps"], ["trials", "lr-search"], ["export", "codecarbon"]]


def _tables(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return inspect(conn).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize("command", READERS, ids=[" ".join(c) for c in READERS])
def test_a_missing_sqlite_ledger_is_not_created(audit, clean_environment: Path, command: list[str]) -> None:
    target = clean_environment / "no" / "such" / "dir" / "ledger.db"
    result = audit("--ledger", str(target), *command)
    assert result.code == 1
    assert result.err == (f"error: no ledger at {target} (no such file): check --ledger or the `ledger` setting "
                          "(`audit config`); an audited search creates it\n")
    assert not (clean_environment / "no").exists()


@pytest.mark.parametrize("server", ["postgres_url", "mariadb_url"])
def test_an_empty_server_database_gets_no_tables(audit, request: pytest.FixtureRequest, server: str) -> None:
    url = request.getfixturevalue(server)
    for command in READERS:
        result = audit("--ledger", url, *command)
        assert result.code == 1, command
        assert result.err.startswith("error: no ledger at ") and "holds no ledger tables" in result.err
    assert _tables(url) == []


def test_doctor_says_the_ledger_is_not_created_and_creates_nothing(audit, clean_environment: Path, postgres_url: str) -> None:
    target = clean_environment / "typo" / "ledger.db"
    for where in (str(target), postgres_url):
        result = audit("--ledger", where, "doctor")
        assert result.code == 0
        assert "not created yet" in result.out
    assert not target.parent.exists() and _tables(postgres_url) == []


def test_a_ledger_that_exists_is_read(audit, clean_environment: Path) -> None:
    with Ledger.open(clean_environment / "l.db") as ledger:
        ledger.ensure_sweep("lr-search", "optuna")
    assert audit("--ledger", str(clean_environment / "l.db"), "sweeps").code == 0
    with pytest.raises(Exception, match="no ledger at"):
        Ledger.open(clean_environment / "other.db", create=False)
