"""A damaged schema row is one clear line, never guessed (issue 19, item 8), and a 0-byte
ledger file is said to be one (item 9)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from auditor.errors import LedgerError, NoLedgerError
from auditor.ledger import Ledger


def _set_version(path: Path, value: str | None) -> None:
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        if value is None:
            conn.execute(text("DELETE FROM auditor_meta WHERE key = 'schema_version'"))
        else:
            conn.execute(text("UPDATE auditor_meta SET value = :v WHERE key = 'schema_version'"), {"v": value})
    engine.dispose()


@pytest.mark.parametrize("value", ["abc", "", "1.5", "0", "-1", "²"])
def test_a_version_that_is_not_one_is_refused_in_one_line(tmp_path: Path, value: str, audit) -> None:
    path = tmp_path / "ledger.db"
    Ledger.open(path).close()
    _set_version(path, value)
    with pytest.raises(LedgerError, match="not a version .* edited by hand or damaged"):
        Ledger.open(path)
    result = audit("--ledger", str(path), "report")
    assert result.code == 1 and result.err.count("\n") == 1 and "unexpected" not in result.err


def test_a_deleted_version_row_is_not_stamped_again(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    Ledger.open(path).close()
    _set_version(path, None)
    for create in (True, False):
        with pytest.raises(LedgerError, match="no schema_version row"):
            Ledger.open(path, create=create)
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM auditor_meta WHERE key = 'schema_version'")).scalar() == 0
    engine.dispose()


def test_a_zero_byte_ledger_is_said_to_be_one_and_left_as_it_is(tmp_path: Path, audit) -> None:
    path = tmp_path / "ledger.db"
    path.touch()
    with pytest.raises(NoLedgerError, match="an empty file of 0 bytes"):
        Ledger.open(path, create=False)
    result = audit("--ledger", str(path), "sweeps")
    assert result.code == 1 and "an empty file of 0 bytes" in result.err
    assert path.stat().st_size == 0  # a command that reads writes nothing
    Ledger.open(path).close()  # a search creates the ledger in it
