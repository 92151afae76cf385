"""A trial row's checksum: what tells a figure a damaged ledger file changed from one it holds.

SQLite keeps no checksum of its own: a flipped bit in a stored number reads back as another
number, and a report would print it. Each trial row therefore carries a hash of its other
values, written with the row and checked when rows are read (:meth:`Ledger.trials`, ``audit
doctor``); a row that no longer matches is named and left out. Values are hashed as the database
gives them back on every backend: numbers by their exact binary value, texts as they are.

Example:
    >>> row = {column: None for column in CHECKED_COLUMNS}
    >>> row.update(sweep_id=1, trial_key="7", state="complete", start_time=1.0, energy_j=37.5)
    >>> stamp = checksum(row)
    >>> len(stamp), checksum({**row, "energy_j": 37.500000000000007}) == stamp
    (16, False)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Double, Integer, and_, func, or_

from auditor.ledger import schema
from auditor.ledger.checks import LATEST_TIME, MOST_JOULES, MOST_SECONDS

CHECKED_COLUMNS = tuple(c.name for c in schema.trials.columns if c.name not in ("id", "checksum"))
SWEEP_COLUMNS = tuple(c.name for c in schema.sweeps.columns if c.name not in ("id", "checksum"))
_KINDS = {c.name: c.type for c in (*schema.trials.columns, *schema.sweeps.columns)}


def _text_of(column: str, value: Any) -> str:
    if value is None:
        return "-"
    kind = _KINDS[column]
    if isinstance(kind, Boolean):
        return "1" if value else "0"
    if isinstance(kind, Double):
        return float(value).hex()
    if isinstance(kind, Integer):
        return str(int(value))
    return str(value)


def checksum(row: Mapping[str, Any], columns: tuple[str, ...] = CHECKED_COLUMNS) -> str:
    """The checksum of a trial row (a mapping of its columns, as written or as read), or of a
    sweep's row with ``columns=SWEEP_COLUMNS``."""
    digest = hashlib.blake2b(digest_size=schema.CHECKSUM_LENGTH // 2)
    for column in columns:
        digest.update(_text_of(column, row[column]).encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f")
    return digest.hexdigest()


def row_problem(row: Mapping[Any, Any], columns: tuple[str, ...] = CHECKED_COLUMNS) -> str | None:
    """Why a trial row (or a sweep's, with ``columns=SWEEP_COLUMNS``) read back is not as it was
    written (None if it is, or if it was written before rows had a checksum)."""
    stored = row.get("checksum")
    if stored is None:
        return None
    try:
        matches = checksum(row, columns) == stored
    except (TypeError, ValueError, OverflowError):  # a number stored as text by a damaged file
        return "a stored value has the wrong type"
    return None if matches else "its values do not match the checksum written with them"


def sound_rows() -> ColumnElement[bool]:
    """The trial rows whose figures read as they were written, as far as the database can tell
    while it sums them (a report over a million rows reads none into Python): numbers where
    numbers belong (on SQLite, whose columns take any type, too), in range,
    and the energy total equal to its domains' sum, which a flipped bit in either breaks. Every
    figure the ledger sums counts these rows only; ``audit doctor`` checks each row in full."""
    t = schema.trials
    domains = [t.c[f"{domain}_energy_j"] for domain in schema.ENERGY_DOMAINS]
    total = domains[0] + domains[1] + domains[2]
    checks = [
        t.c.sweep_id.is_not(None),
        t.c.energy_j.between(0.0, MOST_JOULES), t.c.measured_energy_j.between(0.0, t.c.energy_j * (1 + 1e-9) + 1e-9),
        t.c.gpu_seconds.between(0.0, MOST_SECONDS), t.c.start_time.between(0.0, LATEST_TIME),
        or_(t.c.end_time.is_(None), t.c.end_time.between(0.0, LATEST_TIME)),
        func.abs(t.c.energy_j - total) <= t.c.energy_j * 1e-9 + 1e-9,
        *(column.between(0.0, MOST_JOULES) for column in domains),
    ]
    # On SQLite, whose columns take any type, a number a damaged file turned into text or bytes
    # fails the ranges: SQLite orders every text and blob after every number.
    return and_(*checks)
