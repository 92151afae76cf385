"""The ledger's tables.

Tables carry an ``auditor_`` prefix so that a ledger can share a database with Optuna's own RDB
storage. Times are UTC epoch seconds (portable, exact to the microsecond); structured fields
(params, objective values, devices, flags) are JSON text. Carbon and cost are not stored: they
are computed from energy and GPU time at report time.

Schema history (``SCHEMA_VERSION``):

1. sweeps, trials, budget events, budget reservations.
2. ``auditor_trials.run``: which run of its sweep a trial belongs to (a study created anew under
   the same name, a second process with an in-memory study of that name); rows written by
   schema 1 have none (NULL), and are their sweep's first run.
3. Names compared exactly on MySQL and MariaDB: ``auditor_sweeps.name``, ``auditor_trials.trial_key``
   and ``auditor_trials.name`` are ``VARBINARY`` there (their default collations took ``lr``,
   ``LR`` and ``lr `` for one sweep and merged them). Nothing changes on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    VARBINARY,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.mysql import LONGTEXT
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

SCHEMA_VERSION = 4
RUN_LIMIT = 64  # characters of a run's id
CHECKSUM_LENGTH = 16  # hex digits of a trial row's checksum
ENERGY_DOMAINS = ("gpu", "cpu", "memory")

# MySQL's TEXT holds 64 KB; params and objective values may be longer.
JsonText = Text().with_variant(LONGTEXT(), "mysql").with_variant(LONGTEXT(), "mariadb")

_MYSQL = ("mysql", "mariadb")


class Name(TypeDecorator[str]):
    """A name compared exactly, character for character, on every backend: text on SQLite
    and PostgreSQL, UTF-8 bytes in ``VARBINARY`` on MySQL and MariaDB (whose text collations
    ignore case and trailing spaces, so that ``lr``, ``LR`` and ``lr `` would be one sweep)."""

    impl = String
    cache_ok = True

    def __init__(self, length: int = 255) -> None:
        super().__init__(length)
        self.characters = length

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in _MYSQL:
            return dialect.type_descriptor(VARBINARY(4 * self.characters))
        return dialect.type_descriptor(String(self.characters))

    def process_bind_param(self, value: str | None, dialect: Dialect) -> Any:
        return value.encode("utf-8") if value is not None and dialect.name in _MYSQL else value

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else value


NAME_COLUMNS_TO_BINARY = (  # schema 2 -> 3, on MySQL and MariaDB only
    "ALTER TABLE auditor_sweeps MODIFY name VARBINARY(1020) NOT NULL",
    "ALTER TABLE auditor_trials MODIFY trial_key VARBINARY(1020) NOT NULL, MODIFY name VARBINARY(1020) NULL",
)

metadata = MetaData()

meta = Table(
    "auditor_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)

sweeps = Table(
    "auditor_sweeps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Name(255), nullable=False, unique=True),
    Column("framework", String(32), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("host", String(255), nullable=False),
    Column("attrs", JsonText, nullable=False, default="{}"),
    Column("checksum", String(CHECKSUM_LENGTH)),  # schema 4, as the trials' (auditor.ledger.rows)
)

trials = Table(
    "auditor_trials",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sweep_id", Integer, ForeignKey("auditor_sweeps.id"), nullable=False),
    Column("trial_key", Name(255), nullable=False),
    Column("number", Integer),
    Column("run", String(RUN_LIMIT)),  # schema 2; NULL: the sweep's first run (rows of schema 1)
    Column("name", Name(255)),
    Column("state", String(16), nullable=False),
    Column("params", JsonText, nullable=False, default="{}"),
    Column("objective", JsonText, nullable=False, default="[]"),
    Column("value", Double),  # the first objective value, for "best trial" queries
    Column("start_time", Double, nullable=False),
    Column("end_time", Double),
    Column("host", String(255), nullable=False),
    Column("devices", JsonText, nullable=False, default="[]"),
    Column("gpu_seconds", Double, nullable=False, default=0.0),
    *(
        column
        for domain in ENERGY_DOMAINS
        for column in (
            Column(f"{domain}_energy_j", Double, nullable=False, default=0.0),
            Column(f"{domain}_energy_method", String(16), nullable=False, default="none"),
        )
    ),
    # Totals over the domains, kept with the row so that reports sum plain columns.
    Column("energy_j", Double, nullable=False, default=0.0),
    Column("measured_energy_j", Double, nullable=False, default=0.0),
    Column("flags", JsonText, nullable=False, default="[]"),
    Column("is_final", Boolean, nullable=False, default=False),
    Column("stopped_by_budget", Boolean, nullable=False, default=False),
    Column("recorded_at", Double, nullable=False),
    # schema 4: a hash of the row's other values (auditor.ledger.rows), so that a damaged file's
    # changed figure is named and left out rather than reported; NULL in rows written before
    Column("checksum", String(CHECKSUM_LENGTH)),
    UniqueConstraint("sweep_id", "trial_key", name="uq_auditor_trials_sweep_key"),
    Index("ix_auditor_trials_sweep_state", "sweep_id", "state"),
    Index("ix_auditor_trials_start", "start_time"),
    Index("ix_auditor_trials_final", "is_final"),
    Index("ix_auditor_trials_devices", "devices", mysql_length=255, mariadb_length=255),
)

budget_events = Table(
    "auditor_budget_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sweep_id", Integer, ForeignKey("auditor_sweeps.id")),
    Column("at", Double, nullable=False),
    Column("budget", String(64), nullable=False),
    Column("metric", String(16), nullable=False),
    Column("limit_value", Double, nullable=False),
    Column("scope", String(16), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("action", String(16), nullable=False),
    Column("spent", Double, nullable=False),
    Column("forecast", Double),
    Column("overshoot", Double, nullable=False, default=0.0),
    Column("reason", JsonText, nullable=False),
    Column("intensity_g_per_kwh", Double),
    Column("pue", Double),
    Column("host", String(255), nullable=False),
)

# What running trials are expected to cost, held against a budget until they end (one row per
# worker: its next trial's forecast), so that workers sharing a budget do not all start a trial
# that only one of them could afford.
reservations = Table(
    "auditor_reservations",
    metadata,
    Column("holder", String(255), primary_key=True),
    Column("sweep_id", Integer, ForeignKey("auditor_sweeps.id"), nullable=False),
    Column("energy_j", Double, nullable=False),
    Column("gpu_seconds", Double, nullable=False),
    Column("created_at", Double, nullable=False),
)
