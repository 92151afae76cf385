"""The ledger: one database holding every sweep and trial of a project.

SQLite by default (WAL mode, a busy timeout, each write in its own ``BEGIN IMMEDIATE``
transaction, so several processes can write at once), or any SQLAlchemy URL: PostgreSQL for
searches spread over several machines, MySQL/MariaDB too.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ledger.db"
    >>> with Ledger.open(path) as ledger:
    ...     sweep = ledger.ensure_sweep("lr-search", framework="optuna")
    ...     _ = ledger.record_trial(TrialRecord(sweep="lr-search", trial_key="0", state="complete",
    ...                                         start_time=0.0, end_time=60.0, gpu_seconds=60.0))
    ...     ledger.usage("lr-search").gpu_hours
    0.016666666666666666
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import socket
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    true,
    update,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from auditor import __version__
from auditor.errors import (
    AuditorError,
    InvalidRecordError,
    LedgerError,
    NoLedgerError,
    SchemaTooNewError,
    UnknownSweepError,
)
from auditor.ledger import schema
from auditor.ledger.checks import checked, checked_sweep_attrs, is_finite, warn_once
from auditor.ledger.records import (
    BudgetEvent,
    EnergyReading,
    StateAggregate,
    SweepRecord,
    TrialRecord,
    TrialState,
    Usage,
    fit_name,
)
from auditor.ledger.rows import SWEEP_COLUMNS, checksum, row_problem, sound_rows
from auditor.ledger.url import display, to_url
from auditor.ledger.wal import WalWatch

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger("auditor")

DEFAULT_BUSY_TIMEOUT_S = 30.0
VERIFIED_ROWS = 20_000  # a report checks every trial row of a ledger this size or smaller (about 0.5 s)
STALE_RUNNING_S = 60.0  # a running trial's row not refreshed for this long is reported interrupted
_SCHEMA_LOCK_ID = 0x61756474  # "audt": serialises schema creation on PostgreSQL and MySQL


def _dumps(value: Any) -> str:
    """JSON text for params and objective values; NaN and inf survive, odd types become strings."""
    return json.dumps(value, default=str, allow_nan=True, ensure_ascii=False)


def _first_value(objective: list[float] | None) -> float | None:
    """The first objective value if it is a finite number (what "best trial" compares)."""
    if not objective or not is_finite(objective[0]):
        return None
    return float(objective[0])


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return text[0] if text else type(original).__name__


def _no_ledger(where: str, why: str) -> str:
    return (f"no ledger at {where} ({why}): check --ledger or the `ledger` setting (`audit config`); "
            "an audited search creates it")


def _make_private(path: Path) -> None:
    """Create the ledger's directory and file readable by their owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            pass  # another process created it first


def _read_only_mode(path: Path) -> str | None:
    """How an existing ledger file this process cannot write is opened: ``immutable`` on a
    read-only file system (nothing can change it there), ``ro`` otherwise; None if writable."""
    if not path.is_file():
        return None
    if os.statvfs(path).f_flag & os.ST_RDONLY:
        return "immutable"
    return None if os.access(path, os.W_OK) else "ro"


MAX_TIMEOUT_S = 86_400.0  # the longest timeout every backend takes (the setting ledger_timeout is refused above it)


def server_bounds(backend: str, timeout_s: float) -> dict[str, Any]:
    """The driver's options that bound every step of a ledger server's connection by
    ``timeout_s``: connecting, a statement or a lock wait on the server, and a socket whose peer
    vanished (TCP keepalive; on PostgreSQL also ``tcp_user_timeout``). A server that accepts and
    never answers is bounded by the writer's thread instead (:mod:`auditor.ledger.writer`).

    Example:
        >>> server_bounds("postgresql", 30)["options"]
        '-c statement_timeout=30000 -c lock_timeout=30000'
        >>> server_bounds("mysql", 30)["read_timeout"]  # the server's own lock wait ends first
        35
    """
    seconds = max(1, min(math.ceil(timeout_s), int(MAX_TIMEOUT_S)))
    if backend == "postgresql":
        ms = seconds * 1000
        return {"connect_timeout": seconds, "options": f"-c statement_timeout={ms} -c lock_timeout={ms}",
                "keepalives": 1, "keepalives_idle": min(seconds, 10), "keepalives_interval": min(seconds, 5),
                "keepalives_count": 3, "tcp_user_timeout": ms}
    if backend in ("mysql", "mariadb"):
        return {"connect_timeout": seconds, "read_timeout": seconds + 5, "write_timeout": seconds + 5}
    return {"connect_timeout": seconds}


def _sqlite_engine(url: URL, busy_timeout_s: float, create: bool = True) -> Engine:
    """A SQLite engine: read-write (creating a private file if ``create``), or read-only for a
    ledger file this process cannot write (reports still work; writes fail with a clear error)."""
    path = url.database or ""
    on_disk = path not in ("", ":memory:")
    if on_disk and not create and not Path(path).is_file():
        raise NoLedgerError(_no_ledger(str(path), "no such file"))
    if on_disk and not create and Path(path).stat().st_size == 0:
        raise NoLedgerError(_no_ledger(str(path), "an empty file of 0 bytes, left by a search that could not create it, "
                                                  "a full disk or a copy; delete it, and the next audited search creates the ledger"))
    mode = _read_only_mode(Path(path)) if on_disk else None
    if mode is None:
        if on_disk and create:
            _make_private(Path(path))
        engine = create_engine(url, connect_args={"timeout": busy_timeout_s})
    else:
        flags = "mode=ro&immutable=1" if mode == "immutable" else "mode=ro"
        uri = f"file:{urllib.parse.quote(str(path))}?{flags}"
        engine = create_engine(
            "sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, timeout=busy_timeout_s, check_same_thread=False)
        )
    _configure_sqlite(engine, busy_timeout_s, writable=mode is None)
    return engine


class _PipelineNoise(logging.Filter):
    """Drops psycopg's "error ignored terminating <Pipeline ...>: pipeline aborted": its note, on
    the way out of a batch, of the error it has just raised to us (a trial already in the ledger,
    which the batch then replaces), said once per heartbeat over a PostgreSQL run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("error ignored terminating")


def _quiet_psycopg() -> None:
    psycopg_logger = logging.getLogger("psycopg")
    if not any(isinstance(f, _PipelineNoise) for f in psycopg_logger.filters):
        psycopg_logger.addFilter(_PipelineNoise())


def _text_of_bytes(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _configure_sqlite(engine: Engine, busy_timeout_s: float, writable: bool = True) -> None:
    # A batch of trials goes in as multi-row INSERTs: a plain executemany runs one SQLite step
    # per row, each giving up the GIL, and stalls behind a busy search loop (20x slower).
    engine.dialect.use_insertmanyvalues_wo_returning = True

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun below, explicitly
        # Text that is not UTF-8 (a damaged file: the ledger writes only UTF-8) reads back with
        # its bad bytes escaped, so that its row is named and left out, not the whole query lost.
        dbapi_connection.text_factory = _text_of_bytes
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        if writable:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")  # in WAL: durable across process crashes
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        writing = connection.get_execution_options().get("auditor_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


# Statements built once: building ``insert(...).values(row)`` per trial costs more than the write.
_TRIAL_KEY = (schema.trials.c.sweep_id == bindparam("key_sweep_id")) & (
    schema.trials.c.trial_key == bindparam("key_trial_key")
)
_INSERT_TRIAL = insert(schema.trials)
_UPDATE_TRIAL = update(schema.trials).where(_TRIAL_KEY)
# A running trial's heartbeat never replaces the trial's finished row (a late or replayed one).
_UPDATE_RUNNING_TRIAL = _UPDATE_TRIAL.where(schema.trials.c.state == TrialState.RUNNING.value)
# A sweep's idle row (its energy between trials) grows with every flush: a newer one replaces it.
_UPDATE_IDLE_ROW = _UPDATE_TRIAL.where(schema.trials.c.state == TrialState.IDLE.value,
                                       schema.trials.c.recorded_at <= bindparam("key_recorded_at"))
_SELECT_TRIAL_ID = select(schema.trials.c.id).where(_TRIAL_KEY)


_ADD_RUN_COLUMN = "ALTER TABLE auditor_trials ADD COLUMN run VARCHAR(64)"  # schema 1 -> 2 (schema.RUN_LIMIT)
_ADD_CHECKSUM_COLUMN = f"ALTER TABLE auditor_trials ADD COLUMN checksum VARCHAR({schema.CHECKSUM_LENGTH})"  # 3 -> 4
_KEYS_PER_QUERY = 500  # trial keys looked up per query (well under every backend's limit)


def _last_row_per_trial(rows: list[dict[str, Any]]) -> dict[tuple[int, str], dict[str, Any]]:
    """One row per trial, in order: a later row replaces an earlier one, but a heartbeat
    (``running``) never replaces the trial's end."""
    latest: dict[tuple[int, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["sweep_id"], row["trial_key"])
        earlier = latest.get(key)
        if earlier is None or row["state"] != TrialState.RUNNING.value or earlier["state"] == TrialState.RUNNING.value:
            latest[key] = row
    return latest


class Ledger:
    """A project's ledger of sweeps, trials and budget events. Open one with :meth:`open`."""

    def __init__(self, engine: Engine, url: URL, busy_timeout_s: float) -> None:
        self._engine = engine
        self._writer = engine.execution_options(auditor_write=True)
        self.url = url
        self.busy_timeout_s = busy_timeout_s
        self._sweep_ids: dict[str, int] = {}
        on_disk = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
        self._wal = WalWatch(str(url.database)) if on_disk else None
        self._sound_rows = sound_rows()
        self._left_out: dict[int, str] | None = None  # trial rows every report figure leaves out (verify_rows)

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, target: str | Path, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S, create: bool = True) -> Ledger:
        """Open the ledger at a file path or SQLAlchemy URL, creating it (its file, directory or
        tables) if needed and ``create`` is True.

        Raises:
            NoLedgerError: ``create`` is False and there is no ledger there.
            LedgerError: the location is unusable, the server does not answer, the file is not
                a ledger, or the ledger stays locked past ``busy_timeout_s``.
            SchemaTooNewError: the ledger was written by a newer auditor.
        """
        url = to_url(target)
        try:
            if url.get_backend_name() == "sqlite":
                engine = _sqlite_engine(url, busy_timeout_s, create)
            else:
                if url.get_backend_name() == "postgresql":
                    _quiet_psycopg()
                engine = create_engine(url, pool_pre_ping=True, connect_args=server_bounds(url.get_backend_name(), busy_timeout_s))
        except OSError as exc:
            raise LedgerError(f"cannot create the ledger at {display(url)}: {exc.strerror}; choose another --ledger") from None
        ledger = cls(engine, url, busy_timeout_s)
        try:
            ledger._ensure_schema(create)
        except BaseException:
            engine.dispose()
            raise
        return ledger

    def close(self) -> None:
        """Release the ledger's connections."""
        self._engine.dispose()

    @property
    def _counted(self) -> ColumnElement[bool]:
        """The trial rows a report's figures count: all but those :meth:`verify_rows` leaves out
        (found once for this ledger, on first use). Budgets sum with the row check itself
        (:func:`~auditor.ledger.rows.sound_rows`), on the rows of the moment."""
        left_out = self.verify_rows() if self._left_out is None else self._left_out
        return schema.trials.c.id.notin_(list(left_out)) if left_out else true()

    def damaged_rows(self) -> list[tuple[int, str, str, str]]:
        """Every trial row that does not read as it was written, as ``(row id, sweep, trial key,
        why)``: its checksum, its values' types and ranges, its JSON (reads every row: ``audit
        doctor``; about 2.4 s per 100,000 rows)."""
        t, s = schema.trials, schema.sweeps
        query = select(t, s.c.name.label("sweep_name")).outerjoin(s, s.c.id == t.c.sweep_id).order_by(t.c.id)
        found = []
        with self._read() as conn:
            for row in conn.execute(query):
                why = row_problem(row._mapping)
                if why is None:
                    try:
                        checked(self._trial(row, row.sweep_name or ""))
                    except (InvalidRecordError, TypeError, ValueError, RecursionError, AttributeError) as exc:
                        why = str(exc) if isinstance(exc, InvalidRecordError) else f"a stored value does not read ({type(exc).__name__})"
                if why is not None or row.sweep_name is None:
                    found.append((int(row.id), row.sweep_name or "?", str(row.trial_key), why or "its sweep is not in the ledger"))
        return found

    def integrity_problems(self) -> list[str]:
        """What SQLite's own integrity check finds wrong with the ledger file (its pages, indexes
        and records), at most 20 lines; none when it is sound, and on a server (which keeps its
        own checksums)."""
        if self.backend != "sqlite":
            return []
        with self._guard(), self._engine.connect() as conn:
            found = [str(row[0]) for row in conn.exec_driver_sql("PRAGMA integrity_check(20)")]
        return [] if found == ["ok"] else found

    def damaged_sweeps(self) -> list[tuple[int, str, str]]:
        """Every sweep row that does not read as it was written, as ``(row id, name, why)``;
        reports use such a sweep without its attributes (its recorded grid and budget)."""
        with self._read() as conn:
            rows = conn.execute(select(schema.sweeps).order_by(schema.sweeps.c.id)).all()
        found = []
        for row in rows:
            why = row_problem(row._mapping, SWEEP_COLUMNS)
            if why is None:
                try:
                    checked_sweep_attrs(json.loads(row.attrs))
                except (TypeError, ValueError, RecursionError) as exc:
                    why = f"its attributes do not read ({type(exc).__name__})"
            if why is not None:
                found.append((int(row.id), str(row.name), why))
        return found

    def verify_rows(self, most: int = VERIFIED_ROWS) -> dict[int, str]:
        """Find the trial rows that do not read as they were written and leave them out of every
        figure this ledger reports from now on, with one warning naming them: in one pass of the
        database, rows whose numbers are not sound (:func:`~auditor.ledger.rows.sound_rows`); in a
        ledger of at most ``most`` rows (a report's cost stays under a second), every row checked
        as :meth:`damaged_rows` does (``audit doctor`` checks any number). Returns them (row id: why)."""
        t, s = schema.trials, schema.sweeps
        unsound = (select(t.c.id, s.c.name, t.c.trial_key).outerjoin(s, s.c.id == t.c.sweep_id)
                   .where(case((self._sound_rows, False), else_=True)))
        with self._read() as conn:
            rows = int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            damaged = [(int(row_id), name or "?", str(key), "a number out of range or of the wrong type, or an energy "
                        "total that is not its parts' sum") for row_id, name, key in conn.execute(unsound)]
        if rows <= most:
            seen = {row_id for row_id, *_ in damaged}
            damaged += [row for row in self.damaged_rows() if row[0] not in seen]
        self._left_out = {row_id: why for row_id, _, _, why in damaged}
        if damaged:
            named = "; ".join(f"row {row_id} (trial {key!s:.40} of sweep {sweep!r:.60}: {why[:80]})"
                              for row_id, sweep, key, why in damaged[:3])
            more = f" and {len(damaged) - 3} more" if len(damaged) > 3 else ""
            said = "1 trial row does not read as it was written" if len(damaged) == 1 else \
                f"{len(damaged)} trial rows do not read as they were written"
            warn_once(f"ledger {self.location}: {said}, left out of every figure: {named}{more}; the file is damaged: "
                      "`audit doctor` checks it")
        return self._left_out

    def journal_replaced(self) -> bool:
        """Whether this SQLite ledger's ``-wal`` or ``-shm`` file was deleted or replaced since
        this process first wrote it (what was written since its last checkpoint is then lost to
        everyone else: write it again through a new :class:`Ledger`). False on a server."""
        if self._wal is None:
            return False
        if self._wal.replaced():
            return True
        self._wal.note()
        return False

    def checkpoint(self) -> bool:
        """Copy what a SQLite ledger's write-ahead log holds into the ledger file, waiting on no
        one (a passive checkpoint); True when all of it is there (always on a server)."""
        if self._wal is None:
            return True
        try:
            with self._guard(), self._engine.connect() as conn:
                busy, frames, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        except LedgerError:
            return False
        return busy == 0 and frames == copied

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({self.location!r})"

    @property
    def location(self) -> str:
        """Where the ledger lives, with any password hidden."""
        return self.location_of(self.url)

    @staticmethod
    def location_of(target: str | Path | URL) -> str:
        """Where the ledger at a path or URL lives, as :attr:`location` says it, without opening it."""
        url = target if isinstance(target, URL) else to_url(target)
        if url.get_backend_name() == "sqlite":
            return str(url.database)
        return display(url)

    @property
    def backend(self) -> str:
        """``sqlite``, ``postgresql``, ``mysql`` or ``mariadb``."""
        return self.url.get_backend_name()

    # -- transactions and errors ------------------------------------------------------------

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn database errors into one-line :class:`LedgerError` messages."""
        try:
            yield
        except LedgerError:
            raise
        except SQLAlchemyError as exc:
            raise self._translate(exc) from None
        except UnicodeDecodeError:  # SQLite's own message quoting a damaged schema's bytes
            raise LedgerError(f"{self.location} is not a readable ledger (its schema is damaged): move it aside to "
                              "start a new ledger, or restore it from a backup") from None

    def _translate(self, exc: SQLAlchemyError) -> LedgerError:
        message = _first_line(exc)
        lowered = message.lower()
        where = self.location
        if "not a database" in lowered or "malformed" in lowered:
            return LedgerError(
                f"{where} is not a readable ledger ({message}): move it aside to start a new "
                "ledger, or restore it from a backup"
            )
        if "locked" in lowered or "busy" in lowered:
            return LedgerError(
                f"ledger {where} stayed locked by another process for more than "
                f"{self.busy_timeout_s:g} s: let that process finish, or retry"
            )
        if "unable to open" in lowered or "readonly" in lowered or "read-only" in lowered:
            return LedgerError(f"cannot write ledger {where} ({message}): check the path and its permissions")
        if "disk is full" in lowered or "no space" in lowered:
            return LedgerError(f"ledger {where}: the disk is full; free space and retry")
        if self.backend != "sqlite" and ("connect" in lowered or "connection" in lowered or "timeout" in lowered):
            return LedgerError(f"cannot reach the ledger at {where}: {message}. Is the server running and the URL right?")
        return LedgerError(f"ledger {where}: {message}")

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._guard(), self._writer.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._guard(), self._engine.connect() as conn:
            yield conn

    # -- schema -----------------------------------------------------------------------------

    def _stored_version(self, conn: Connection, settled: bool = True) -> int | None:
        """The ledger's schema version; None for a database without the auditor's tables (or,
        unless ``settled``, one whose tables another process is creating: MySQL commits each
        table as it is created, before the version row).

        Raises:
            LedgerError: the version row is missing or does not hold a version (edited by hand
                or damaged): it is never guessed, since a wrong one would misread every row.
        """
        if not inspect(conn).has_table(schema.meta.name):
            return None
        value = conn.execute(
            select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")
        ).scalar_one_or_none()
        fix = ("it was edited by hand or damaged: restore it from a backup, or put the row back "
               "(auditor_meta: key schema_version, value 1 for a ledger written by hpo-auditor 0.1)")
        if value is None and not settled:
            return None  # looked at again under the schema lock
        if value is None:
            raise LedgerError(f"ledger {self.location} has no schema_version row in auditor_meta; {fix}")
        if not (value.strip().isascii() and value.strip().isdecimal()) or int(value) < 1:
            raise LedgerError(f"ledger {self.location} has schema_version {value!r:.40} in auditor_meta, not a version "
                              f"(1, 2...); {fix}")
        return int(value)

    def _lock_schema(self, conn: Connection) -> None:
        if self.backend == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK_ID})")
        elif self.backend in ("mysql", "mariadb"):
            conn.exec_driver_sql(f"SELECT GET_LOCK('auditor_schema_{_SCHEMA_LOCK_ID}', {int(self.busy_timeout_s)})")

    def _ensure_schema(self, create: bool = True) -> None:
        with self._read() as conn:
            version = self._stored_version(conn, settled=not create)
        if version is None and not create:
            raise NoLedgerError(_no_ledger(self.location, "the database holds no ledger tables"))
        if version is None:
            with self._guard(), self._writer.connect() as conn:
                with conn.begin():
                    self._lock_schema(conn)
                    version = self._stored_version(conn)
                    if version is None:
                        schema.metadata.create_all(conn)
                        conn.execute(
                            insert(schema.meta),
                            [
                                {"key": "schema_version", "value": str(schema.SCHEMA_VERSION)},
                                {"key": "created_by", "value": f"hpo-auditor {__version__}"},
                            ],
                        )
                        version = schema.SCHEMA_VERSION
                if self.backend in ("mysql", "mariadb"):  # a session lock: release it after the commit
                    conn.exec_driver_sql(f"SELECT RELEASE_LOCK('auditor_schema_{_SCHEMA_LOCK_ID}')")
                    conn.commit()
        if version < schema.SCHEMA_VERSION:
            try:
                version = self._migrate()
            except LedgerError as exc:
                raise LedgerError(
                    f"ledger {self.location} has schema {version}, which this auditor upgrades to "
                    f"{schema.SCHEMA_VERSION} when it opens it (adding columns, on MySQL and MariaDB making names exact; nothing else changes), "
                    f"and the upgrade failed: {exc}. Open it once where it can be written"
                ) from None
        if version > schema.SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"ledger {self.location} has schema {version}, written by a newer auditor; this one "
                f"(hpo-auditor {__version__}) reads up to schema {schema.SCHEMA_VERSION}: "
                "pip install -U hpo-auditor"
            )
        self.schema_version = version

    def _migrate(self) -> int:
        """Bring a ledger of an older schema up to this one, under the schema lock (another
        process may be doing the same): each step adds what its version brought, and nothing
        stored is rewritten. Returns the version now stored."""
        with self._guard(), self._writer.connect() as conn:
            with conn.begin():
                self._lock_schema(conn)
                version = self._stored_version(conn)
                assert version is not None
                if version < 2:  # the run of each trial; rows of schema 1 keep NULL (first run)
                    columns = {c["name"] for c in inspect(conn).get_columns(schema.trials.name)}
                    if "run" not in columns:
                        conn.exec_driver_sql(_ADD_RUN_COLUMN)
                    version = 2
                if version < 3:  # names compared exactly on MySQL and MariaDB
                    if self.backend in ("mysql", "mariadb"):
                        for statement in schema.NAME_COLUMNS_TO_BINARY:
                            conn.exec_driver_sql(statement)
                    version = 3
                if version < 4:  # each trial row's checksum; rows written before keep NULL (not checked)
                    columns = {c["name"] for c in inspect(conn).get_columns(schema.trials.name)}
                    if "checksum" not in columns:
                        conn.exec_driver_sql(_ADD_CHECKSUM_COLUMN)
                    if "checksum" not in {c["name"] for c in inspect(conn).get_columns(schema.sweeps.name)}:
                        conn.exec_driver_sql(_ADD_CHECKSUM_COLUMN.replace("auditor_trials", "auditor_sweeps"))
                    version = 4
                conn.execute(update(schema.meta).where(schema.meta.c.key == "schema_version")
                             .values(value=str(version)))
            if self.backend in ("mysql", "mariadb"):
                conn.exec_driver_sql(f"SELECT RELEASE_LOCK('auditor_schema_{_SCHEMA_LOCK_ID}')")
                conn.commit()
        return version

    # -- sweeps -----------------------------------------------------------------------------

    def _sweep(self, row: Any) -> SweepRecord:
        """A sweep's row as a record; attributes that do not read (a damaged ledger, a value no
        search writes) are left out, with one warning naming the sweep."""
        damage = row_problem(row._mapping, SWEEP_COLUMNS)
        try:
            stored = json.loads(row.attrs)
        except (TypeError, ValueError, RecursionError) as exc:
            stored, dropped = {}, [f"its attributes do not read ({type(exc).__name__})"]
        else:
            stored, dropped = checked_sweep_attrs(stored) if damage is None else ({}, [damage])
        if dropped:
            warn_once(f"ledger {self.location}: sweep {row.name!r:.80} read without attributes: {'; '.join(dropped)}"[:400])
        return SweepRecord(row.id, row.name, row.framework, row.created_at, row.host, stored)

    def get_sweep(self, name: str) -> SweepRecord | None:
        """The sweep called ``name`` (any name its search accepted, a long one as the ledger cut
        it or in full), or None."""
        names = {fit_name(name)}
        if self.backend == "sqlite" and "\x00" in name and len(name) <= 255:
            names.add(name)  # as earlier versions stored a NUL on SQLite
        with self._read() as conn:
            rows = conn.execute(select(schema.sweeps).where(schema.sweeps.c.name.in_(names))).all()
        row = next((r for r in rows if r.name == name), rows[0] if rows else None)
        return self._sweep(row) if row is not None else None

    def ensure_sweep(self, name: str, framework: str = "run", attrs: dict[str, Any] | None = None) -> SweepRecord:
        """The sweep called ``name``, created if it does not exist yet (safe under concurrency).
        Any text is a name (Optuna accepts an empty one); a name longer than the column is
        stored cut and hashed (:func:`fit_name`), and found again by the name in full."""
        existing = self.get_sweep(name)
        if existing is None:
            attrs, dropped = checked_sweep_attrs(attrs or {})
            if dropped:
                logger.warning("sweep %r created without attributes it should not hold: %s", name[:80], "; ".join(dropped))
            try:
                row = {"name": fit_name(name), "framework": framework, "created_at": time.time(),
                       "host": socket.gethostname(), "attrs": _dumps(attrs or {})}
                with self._writer.begin() as conn:
                    conn.execute(insert(schema.sweeps).values(**row, checksum=checksum(row, SWEEP_COLUMNS)))
            except IntegrityError:
                pass  # created by another process meanwhile
            except SQLAlchemyError as exc:
                raise self._translate(exc) from None
            existing = self.get_sweep(name)
            assert existing is not None
        self._sweep_ids[name] = existing.id
        return existing

    def sweeps(self) -> list[SweepRecord]:
        """Every sweep, oldest first."""
        with self._read() as conn:
            rows = conn.execute(select(schema.sweeps).order_by(schema.sweeps.c.id)).all()
        return [self._sweep(row) for row in rows]

    def named_sweeps(self, names: Collection[str]) -> list[str]:
        """``names`` (as a user typed them: a long one in full, an empty one) as the ledger holds
        them, in order.

        Raises:
            UnknownSweepError: one of them is no sweep here; the message says which, with the
                closest names the ledger holds, or the first ones.
        """
        held = [s.name for s in self.sweeps()]
        found = []
        for name in names:
            stored = fit_name(name)
            if stored not in held:
                close = difflib.get_close_matches(stored, held, n=3, cutoff=0.5)
                listed = ", ".join(repr(n[:60]) for n in (close or held[:10])) or "no sweep yet"
                more = f" and {len(held) - 10} more" if not close and len(held) > 10 else ""
                said = f"did you mean {listed}?" if close else f"it holds {listed}{more}"
                raise UnknownSweepError(f"no sweep called {name[:80]!r} in {self.location}: {said} (see `audit sweeps`)")
            found.append(stored)
        return found

    def _sweep_id(self, name: str) -> int:
        if name not in self._sweep_ids:
            sweep = self.get_sweep(name)
            if sweep is None:
                raise UnknownSweepError(f"no sweep called {name!r} in ledger {self.location}: see `audit config` and the sweep names")
            self._sweep_ids[name] = sweep.id
        return self._sweep_ids[name]

    # -- trials -----------------------------------------------------------------------------

    def _trial_row(self, record: TrialRecord) -> dict[str, Any]:
        record = checked(record)  # raises InvalidRecordError, naming the trial
        row: dict[str, Any] = {
            "sweep_id": self._sweep_id(record.sweep),
            "trial_key": fit_name(str(record.trial_key)),
            "number": record.number,
            "run": record.run,
            "name": record.name,
            "state": TrialState(record.state).value,
            "params": _dumps(record.params),
            "objective": _dumps(record.objective if record.objective is not None else []),
            "value": _first_value(record.objective),
            "start_time": record.start_time,
            "end_time": record.end_time,
            "host": record.host,
            "devices": _dumps(record.devices),
            "gpu_seconds": record.gpu_seconds,
            "flags": _dumps(record.flags),
            "is_final": record.is_final,
            "stopped_by_budget": record.stopped_by_budget,
            "recorded_at": record.recorded_at,
        }
        row["energy_j"] = row["measured_energy_j"] = 0.0
        for domain in schema.ENERGY_DOMAINS:
            reading = record.energy.get(domain, EnergyReading())
            row[f"{domain}_energy_j"] = reading.joules
            row[f"{domain}_energy_method"] = reading.method
            row["energy_j"] += reading.joules
            row["measured_energy_j"] += reading.joules if reading.is_measured else 0.0
        row["checksum"] = checksum(row)
        return row

    def record_trial(self, record: TrialRecord) -> int:
        """Write a trial (its sweep must exist); a trial already recorded is replaced, not doubled.

        Returns:
            The trial's row id.

        Raises:
            InvalidRecordError: the record holds a value the ledger must not store.
        """
        row = self._trial_row(record)
        try:
            with self._writer.begin() as conn:
                return int(conn.execute(_INSERT_TRIAL, row).inserted_primary_key[0])  # type: ignore[index]
        except IntegrityError:
            pass  # recorded before (a resumed study, a running trial now finished): replace it
        except SQLAlchemyError as exc:
            raise self._refused(exc, record) from None
        key = {"key_sweep_id": row["sweep_id"], "key_trial_key": row["trial_key"]}
        with self._write() as conn:
            statement = _UPDATE_RUNNING_TRIAL if record.state is TrialState.RUNNING else _UPDATE_TRIAL
            conn.execute(statement, {**row, **key})
            return int(conn.execute(_SELECT_TRIAL_ID, key).scalar_one())

    def record_trials(self, records: list[TrialRecord], *, keep_finished: bool = False) -> list[TrialRecord]:
        """Write several trials in one transaction (a plugin's batch). A trial already recorded
        is replaced, as :meth:`record_trial` does: a running trial's row by any newer row, a
        finished trial's row never by a heartbeat. A batch holding several rows of one trial
        (its heartbeat, then its end) writes the last that counts.

        With ``keep_finished`` (trials replayed from a held-back file), a finished trial already
        in the ledger is never replaced: a record that differs from it is returned, not written.

        Returns:
            The records not written because they conflict with a finished trial (``keep_finished``).

        Raises:
            InvalidRecordError: a record holds a value the ledger must not store (none is written).
        """
        if not records:
            return []
        rows = [self._trial_row(record) for record in records]
        latest = _last_row_per_trial(rows)
        try:  # the common case: none of them is in the ledger yet
            with self._writer.begin() as conn:
                conn.execute(_INSERT_TRIAL, list(latest.values()))
            return []
        except IntegrityError:
            pass  # some are (a running trial's heartbeat row, a resumed search): replace those
        except SQLAlchemyError as exc:
            raise self._refused(exc) from None
        if keep_finished:
            return [record for record, row in zip(records, rows, strict=True) if not self._write_unless_finished(record, row)]
        for attempt in range(2):  # a second try if another process inserted one of them meanwhile
            try:
                with self._writer.begin() as conn:
                    stored = self._stored_keys(conn, latest)
                    new = [row for key, row in latest.items() if key not in stored]
                    replacing = [{**row, "key_sweep_id": key[0], "key_trial_key": key[1]}
                                 for key, row in latest.items() if key in stored]
                    if new:
                        conn.execute(_INSERT_TRIAL, new)
                    for statement, state_rows in (
                        (_UPDATE_RUNNING_TRIAL, [r for r in replacing if r["state"] == TrialState.RUNNING.value]),
                        (_UPDATE_TRIAL, [r for r in replacing if r["state"] != TrialState.RUNNING.value]),
                    ):
                        if state_rows:
                            conn.execute(statement, state_rows)
                return []
            except IntegrityError as exc:
                if attempt:
                    raise self._refused(exc) from None
            except SQLAlchemyError as exc:
                raise self._refused(exc) from None
        return []

    def _stored_keys(self, conn: Connection, rows: dict[tuple[int, str], dict[str, Any]]) -> set[tuple[int, str]]:
        """Which of these trials (sweep id, trial key) the ledger holds already."""
        stored: set[tuple[int, str]] = set()
        by_sweep: dict[int, list[str]] = {}
        for sweep_id, trial_key in rows:
            by_sweep.setdefault(sweep_id, []).append(trial_key)
        columns = (schema.trials.c.sweep_id, schema.trials.c.trial_key)
        for sweep_id, keys in by_sweep.items():
            for chunk in range(0, len(keys), _KEYS_PER_QUERY):
                query = select(*columns).where(schema.trials.c.sweep_id == sweep_id,
                                               schema.trials.c.trial_key.in_(keys[chunk:chunk + _KEYS_PER_QUERY]))
                stored.update((row.sweep_id, row.trial_key) for row in conn.execute(query))
        return stored

    def _write_unless_finished(self, record: TrialRecord, row: dict[str, Any]) -> bool:
        """Insert ``row`` or replace a running one; False if a finished row differs from it."""
        try:
            with self._writer.begin() as conn:
                conn.execute(_INSERT_TRIAL, row)
                return True
        except IntegrityError:
            pass
        except SQLAlchemyError as exc:
            raise self._refused(exc, record) from None
        key = {"key_sweep_id": row["sweep_id"], "key_trial_key": row["trial_key"]}
        with self._write() as conn:
            if record.state is TrialState.IDLE:  # the newer of two idle rows stands; never a conflict
                conn.execute(_UPDATE_IDLE_ROW, {**row, **key, "key_recorded_at": row["recorded_at"]})
                return True
            if conn.execute(_UPDATE_RUNNING_TRIAL, {**row, **key}).rowcount:
                return True
            stored = conn.execute(select(schema.trials).where(_TRIAL_KEY), key).one()
        if record.state is TrialState.RUNNING:
            return True  # an older heartbeat of a trial that has finished since
        same = (stored.state, stored.end_time, stored.gpu_seconds) == (row["state"], row["end_time"], row["gpu_seconds"])
        return same and math.isclose(stored.energy_j, row["energy_j"], rel_tol=1e-9, abs_tol=1e-9)

    def _refused(self, exc: SQLAlchemyError, record: TrialRecord | None = None) -> AuditorError:
        """A database error as one line: the ledger refusing a record's content (a value too
        long or out of range) is an :class:`InvalidRecordError`, the rest a :class:`LedgerError`."""
        if isinstance(exc, DataError):
            which = f"trial {record.trial_key} of sweep {record.sweep!r}" if record is not None else "a trial of the batch"
            return InvalidRecordError(f"ledger {self.location} refused {which}: {_first_line(exc)}")
        return self._translate(exc)

    @staticmethod
    def _state(row: Any) -> str:
        """The row's state, ``interrupted`` for a running trial whose heartbeat went stale (its
        process died: its energy is what the last heartbeat measured)."""
        last_seen = row.end_time if row.end_time is not None else row.start_time
        if row.state == TrialState.RUNNING.value and last_seen < time.time() - STALE_RUNNING_S:
            return TrialState.INTERRUPTED.value
        return str(row.state)

    def _trial(self, row: Any, sweep_name: str) -> TrialRecord:
        return TrialRecord(
            sweep=sweep_name,
            trial_key=row.trial_key,
            number=row.number,
            run=row.run,
            name=row.name,
            state=self._state(row),
            params=json.loads(row.params),
            objective=json.loads(row.objective) or None,
            start_time=row.start_time,
            end_time=row.end_time,
            host=row.host,
            devices=json.loads(row.devices),
            gpu_seconds=row.gpu_seconds,
            energy={
                domain: EnergyReading(getattr(row, f"{domain}_energy_j"), getattr(row, f"{domain}_energy_method"))
                for domain in schema.ENERGY_DOMAINS
                if getattr(row, f"{domain}_energy_method") != "none"
            },
            flags=json.loads(row.flags),
            is_final=bool(row.is_final),
            stopped_by_budget=bool(row.stopped_by_budget),
            recorded_at=row.recorded_at,
        )

    def _readable(self, rows: Iterable[Any], sweep: str | None = None) -> list[TrialRecord]:
        """The trials of ``rows`` that read as the ledger wrote them: a row a damaged file no
        longer reads (a value that is not JSON, out of range, of the wrong type) is left out,
        with one warning naming it."""
        trials = []
        for row in rows:
            name = sweep if sweep is not None else row.sweep_name
            try:
                damage = row_problem(row._mapping)
                if damage:
                    raise InvalidRecordError(damage)
                trials.append(checked(self._trial(row, name)))
            except (InvalidRecordError, TypeError, ValueError, RecursionError, AttributeError) as exc:
                why = str(exc) if isinstance(exc, InvalidRecordError) else type(exc).__name__
                warn_once(f"ledger {self.location}: trial {row.trial_key!s:.60} of sweep {name!r:.80} does not read "
                          f"({why[:200]}): left out; the file may be damaged: `audit doctor` checks it")
        return trials

    def trials(self, sweep: str | None = None, include_idle: bool = False) -> list[TrialRecord]:
        """The trials of one sweep (or of every sweep), in the order they were recorded; with
        ``include_idle``, also the rows holding each worker's idle energy between trials."""
        t, s = schema.trials, schema.sweeps
        query = select(t, s.c.name.label("sweep_name")).join(s, s.c.id == t.c.sweep_id).order_by(t.c.id)
        if not include_idle:
            query = query.where(t.c.state != "idle")
        if sweep is not None:
            query = query.where(t.c.sweep_id == self._sweep_id(sweep))
        with self._read() as conn:
            rows = conn.execute(query).all()
        return self._readable(rows)

    def trials_frame(self, sweep: str | None = None) -> pd.DataFrame:
        """The trials as a pandas DataFrame: one row per trial, energy per domain in joules
        with its method, params and objective values as columns ``param_*`` and ``value_*``.

        Example:
            >>> import tempfile, pathlib
            >>> with Ledger.open(pathlib.Path(tempfile.mkdtemp()) / "l.db") as ledger:
            ...     _ = ledger.ensure_sweep("s")
            ...     _ = ledger.record_trial(TrialRecord(sweep="s", trial_key="0", state="complete",
            ...                                         start_time=0, params={"lr": 0.1}, objective=[0.9]))
            ...     frame = ledger.trials_frame("s")
            >>> frame[["sweep", "state", "param_lr", "value_0"]].values.tolist()
            [['s', 'complete', 0.1, 0.9]]
        """
        import pandas as pd

        rows = []
        for trial in self.trials(sweep):
            row: dict[str, Any] = {
                "sweep": trial.sweep, "trial_key": trial.trial_key, "number": trial.number, "name": trial.name,
                "state": TrialState(trial.state).value, "start_time": trial.start_time, "end_time": trial.end_time,
                "host": trial.host, "gpus": len(trial.devices), "gpu_seconds": trial.gpu_seconds,
                "energy_j": trial.energy_joules, "is_final": trial.is_final, "stopped_by_budget": trial.stopped_by_budget,
                "flags": ",".join(trial.flags),
            }
            for domain in schema.ENERGY_DOMAINS:
                reading = trial.energy.get(domain, EnergyReading())
                row[f"{domain}_energy_j"], row[f"{domain}_energy_method"] = reading.joules, reading.method
            row.update({f"param_{k}": v for k, v in trial.params.items()})
            row.update({f"value_{i}": v for i, v in enumerate(trial.objective or [])})
            rows.append(row)
        frame = pd.DataFrame(rows)
        for column in ("start_time", "end_time"):
            if column in frame:
                frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
        return frame

    def runs(self, sweep: str) -> list[str | None]:
        """The runs of a sweep, first started first (None: the trials of schema 1, its first run).

        Raises:
            UnknownSweepError: no such sweep.
        """
        t = schema.trials
        query = (select(t.c.run).where(t.c.sweep_id == self._sweep_id(sweep), t.c.state != "idle")
                 .group_by(t.c.run).order_by(func.min(t.c.start_time)))
        with self._read() as conn:
            return [row[0] for row in conn.execute(query).all()]

    def run_spans(self, since: float | None = None) -> list[tuple[str, float, float]]:
        """Per run of every sweep: the sweep, the run's first start and its last end (what the
        time a project's searches took is the union of: the gaps between runs are no search
        time; and how many runs each sweep has), in one query."""
        t, s = schema.trials, schema.sweeps
        end = func.coalesce(t.c.end_time, t.c.start_time)
        sweep_key = t.c.sweep_id + 0  # a full scan and one sort, as in aggregate()
        query = (select(sweep_key, func.min(t.c.start_time), func.max(end)).where(t.c.state != "idle", self._counted)
                 .group_by(sweep_key, t.c.run))
        if since is not None:
            query = query.where(t.c.start_time >= since)
        with self._read() as conn:
            names = dict(conn.execute(select(s.c.id, s.c.name)).all())
            return [(names[sweep_id], float(a), float(b)) for sweep_id, a, b in conn.execute(query).all()
                    if a is not None and sweep_id in names]

    def count_trials(self, sweep: str | None = None) -> int:
        """How many trials the ledger holds (for one sweep, or in all)."""
        query = select(func.count()).select_from(schema.trials).where(schema.trials.c.state != "idle")
        if sweep is not None:
            query = query.where(schema.trials.c.sweep_id == self._sweep_id(sweep))
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def recent_usage(self, sweep: str, count: int = 10, warm_ups: bool = True, exclude: Collection[str] = ()) -> list[Usage]:
        """The energy and GPU time of the sweep's last ``count`` finished trials, newest first
        (what a resumed search forecasts its next trial from). A trial the budget stopped or
        refused is left out: cut short, it is no sample of what a trial costs.

        ``warm_ups=False`` also leaves out each run's first trial (its process's one-time
        warm-up), as a budget's forecast does in the process that ran it, unless nothing else
        is left. ``exclude``: trial keys left out (those a caller already counts).

        Raises:
            UnknownSweepError: no such sweep.
        """
        t = schema.trials
        finished = (t.c.sweep_id == self._sweep_id(sweep), t.c.state.notin_(["running", "idle"]),
                    t.c.stopped_by_budget.is_(False), self._sound_rows)
        query = select(t.c.energy_j, t.c.gpu_seconds, t.c.run, t.c.number).where(*finished)
        if exclude:
            query = query.where(t.c.trial_key.notin_(sorted(exclude)))
        with self._read() as conn:
            rows = conn.execute(query.order_by(t.c.end_time.desc()).limit(count)).all()
            firsts = {} if warm_ups else dict(
                conn.execute(select(t.c.run, func.min(t.c.number)).where(*finished).group_by(t.c.run)).all())
        kept = [row for row in rows if row.number is None or firsts.get(row.run) != row.number] or rows
        return [Usage(float(row.energy_j) / 3.6e6, float(row.gpu_seconds) / 3600.0, 1) for row in kept]

    def usage(self, sweep: str | None = None, exclude: tuple[str, Collection[str]] | None = None) -> Usage:
        """Summed IT energy and GPU time of one sweep's trials (or of the whole ledger).

        ``exclude``: a sweep and trial keys whose rows are left out (trials a caller counts
        itself, from figures newer than their rows here).
        """
        t = schema.trials
        trials = func.coalesce(func.sum(case((t.c.state != "idle", 1), else_=0)), 0)
        query = (select(func.coalesce(func.sum(t.c.energy_j), 0.0), func.coalesce(func.sum(t.c.gpu_seconds), 0.0), trials)
                 .where(self._sound_rows))
        if sweep is not None:
            query = query.where(t.c.sweep_id == self._sweep_id(sweep))
        query = self._excluding(query, exclude)
        with self._read() as conn:
            joules, gpu_seconds, count = conn.execute(query).one()
        return Usage(energy_kwh=float(joules) / 3.6e6, gpu_hours=float(gpu_seconds) / 3600.0, trials=int(count))

    # -- aggregates (reports) -------------------------------------------------------------

    def aggregate(self, since: float | None = None) -> list[StateAggregate]:
        """Per sweep and state: trial count, GPU-seconds, joules, measured joules and time span,
        summed by the database (a report over a million trials reads no row into Python)."""
        t = schema.trials
        # Grouping by an expression keeps SQLite from walking the (sweep, state) index and
        # fetching each row at random: a full scan and one sort are several times faster.
        sweep_key = t.c.sweep_id + 0
        # A running trial whose heartbeat stopped long ago was killed with its search.
        stale = time.time() - STALE_RUNNING_S
        state = case(
            (and_(t.c.state == "running", func.coalesce(t.c.end_time, t.c.start_time) < stale), "interrupted"),
            else_=t.c.state,
        )
        query = select(
            sweep_key, state, func.count(), func.sum(t.c.gpu_seconds), func.sum(t.c.energy_j), func.sum(t.c.measured_energy_j),
            func.sum(case((t.c.stopped_by_budget, 1), else_=0)), func.min(t.c.start_time),
            func.max(func.coalesce(t.c.end_time, t.c.start_time)),
            func.sum(case((t.c.flags.like('%"energy-missing"%'), 1), else_=0)),
            func.sum(case((t.c.flags.like('%"refused-by-budget"%'), 1), else_=0)),
        ).where(self._counted).group_by(sweep_key, state)
        if since is not None:
            query = query.where(t.c.start_time >= since)
        with self._read() as conn:
            rows = conn.execute(query).all()
            sweeps = {row.id: (row.name, row.framework) for row in conn.execute(select(schema.sweeps.c.id, schema.sweeps.c.name, schema.sweeps.c.framework))}
        return [
            StateAggregate(*sweeps[int(r[0])], r[1], int(r[2]), float(r[3] or 0), float(r[4] or 0), float(r[5] or 0),
                           int(r[6] or 0), r[7], r[8], int(r[9] or 0), int(r[10] or 0))
            for r in rows if r[0] in sweeps
        ]

    def intervals(self, sweep: str | None = None, since: float | None = None,
                  exclude: tuple[str, Collection[str]] | None = None) -> list[tuple[str, float, float, float, float]]:
        """Per row, idle stretches included: sweep, start, end (the last heartbeat for a running
        trial), joules and GPU-seconds; what an hourly grid charges each piece of work by.
        ``exclude`` as in :meth:`usage`.

        Raises:
            UnknownSweepError: ``sweep`` is not in the ledger.
        """
        t, s = schema.trials, schema.sweeps
        query = select(s.c.name, t.c.start_time, func.coalesce(t.c.end_time, t.c.start_time), t.c.energy_j,
                       t.c.gpu_seconds).join(s, s.c.id == t.c.sweep_id).where(self._counted)
        if sweep is not None:
            query = query.where(t.c.sweep_id == self._sweep_id(sweep))
        if since is not None:
            query = query.where(t.c.start_time >= since)
        query = self._excluding(query, exclude)
        with self._read() as conn:
            return [(name, float(a), float(b), float(j or 0), float(g or 0)) for name, a, b, j, g in conn.execute(query).all()]

    def device_lists(self, since: float | None = None) -> dict[str, int]:
        """The device lists trials held, with how many trials held each."""
        t = schema.trials
        query = select(t.c.devices, func.count()).where(self._counted).group_by(t.c.devices)
        if since is not None:
            query = query.where(t.c.start_time >= since)
        with self._read() as conn:
            return {row[0]: int(row[1]) for row in conn.execute(query).all()}

    def gpu_seconds_by_devices(self, since: float | None = None) -> list[tuple[str, str, float]]:
        """Per sweep and device list, the trials' GPU-seconds summed by the database (idle
        stretches left out, as in the report's GPU-hours): what embodied carbon is charged on,
        each device model at its own figure.

        Example:
            >>> import tempfile, pathlib
            >>> with Ledger.open(pathlib.Path(tempfile.mkdtemp()) / "l.db") as store:
            ...     _ = store.ensure_sweep("s")
            ...     _ = store.record_trial(TrialRecord(sweep="s", trial_key="0", state="complete", start_time=0.0,
            ...                                        gpu_seconds=7200.0, devices=[{"model": "A100"}, {"model": "A100"}]))
            ...     store.gpu_seconds_by_devices()
            [('s', '[{"model": "A100"}, {"model": "A100"}]', 7200.0)]
        """
        t, s = schema.trials, schema.sweeps
        query = (select(s.c.name, t.c.devices, func.sum(t.c.gpu_seconds)).join(s, s.c.id == t.c.sweep_id)
                 .where(t.c.state != "idle", self._counted).group_by(s.c.name, t.c.devices))
        if since is not None:
            query = query.where(t.c.start_time >= since)
        with self._read() as conn:
            return [(name, devices or "[]", float(seconds or 0)) for name, devices, seconds in conn.execute(query).all()]

    def final_trials(self) -> list[TrialRecord]:
        """Trials marked as a final run, oldest first."""
        t, s = schema.trials, schema.sweeps
        query = (
            select(t, s.c.name.label("sweep_name")).join(s, s.c.id == t.c.sweep_id)
            .where(t.c.is_final == true()).order_by(t.c.id)
        )
        with self._read() as conn:
            return self._readable(conn.execute(query).all())

    def trial_points(self, sweeps: list[str] | None = None, since: float | None = None) -> list[tuple[str, str, float, float, float, str]]:
        """Per trial, in order of end: sweep, state, end time, joules, GPU-seconds and the
        objective JSON (what the report's plots draw)."""
        t, s = schema.trials, schema.sweeps
        end = func.coalesce(t.c.end_time, t.c.start_time)
        query = (select(s.c.name, t.c.state, end, t.c.energy_j, t.c.gpu_seconds, t.c.objective).join(s, s.c.id == t.c.sweep_id)
                 .where(self._counted).order_by(end))
        if sweeps:
            query = query.where(s.c.name.in_(sweeps))
        if since is not None:
            query = query.where(t.c.start_time >= since)
        with self._read() as conn:
            return [tuple(row) for row in conn.execute(query).all()]

    def best_trial(self, sweep: str, maximize: bool = False) -> TrialRecord | None:
        """The completed trial of ``sweep`` with the best first objective value, or None."""
        t = schema.trials
        order = t.c.value.desc() if maximize else t.c.value.asc()
        query = (
            select(t).where(t.c.sweep_id == self._sweep_id(sweep), t.c.state == "complete", t.c.value.is_not(None))
            .order_by(order).limit(1)
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        return next(iter(self._readable([row], sweep)), None) if row is not None else None

    # -- budget reservations ----------------------------------------------------------------

    def _excluding(self, query: Any, exclude: tuple[str, Collection[str]] | None) -> Any:
        if not exclude or not exclude[1]:
            return query
        try:
            sweep_id = self._sweep_id(exclude[0])
        except UnknownSweepError:
            return query  # no rows of a sweep the ledger does not hold
        t = schema.trials
        return query.where(~((t.c.sweep_id == sweep_id) & t.c.trial_key.in_(sorted(exclude[1]))))

    def reserve(
        self,
        sweep: str,
        holder: str,
        ahead: Usage,
        decide: Callable[[Usage, Usage], bool],
        project: bool = False,
        exclude: Collection[str] = (),
        mine: Collection[str] = (),
    ) -> bool:
        """Reserve ``ahead`` for ``holder``'s next trial if ``decide(spent, held)`` allows it, in
        one transaction that other workers' reservations wait for. ``spent`` is what the scope's
        trials drew, leaving out the rows of ``exclude`` (trial keys of ``sweep`` the caller
        counts itself); ``held`` is what the other holders reserved, leaving out ``mine`` (the
        caller's own holders, whose running trials it counts itself). Returns the answer; a
        refused holder keeps no reservation."""
        t, r = schema.trials, schema.reservations
        sweep_id = self._sweep_id(sweep)
        with self._write() as conn:
            # serialise reservations (SQLite's BEGIN IMMEDIATE already does)
            lock = select(schema.meta.c.key).where(schema.meta.c.key == "schema_version").with_for_update()
            conn.execute(lock)
            spent = select(func.coalesce(func.sum(t.c.energy_j), 0.0), func.coalesce(func.sum(t.c.gpu_seconds), 0.0)).where(self._sound_rows)
            held = select(func.coalesce(func.sum(r.c.energy_j), 0.0), func.coalesce(func.sum(r.c.gpu_seconds), 0.0)).where(
                r.c.holder.notin_([holder, *mine])
            )
            if not project:
                spent, held = spent.where(t.c.sweep_id == sweep_id), held.where(r.c.sweep_id == sweep_id)
            spent = self._excluding(spent, (sweep, exclude))
            spent_j, spent_s = conn.execute(spent).one()
            held_j, held_s = conn.execute(held).one()
            allowed = decide(Usage(float(spent_j) / 3.6e6, float(spent_s) / 3600),
                             Usage(float(held_j) / 3.6e6, float(held_s) / 3600))
            conn.execute(delete(r).where(r.c.holder == holder))
            if allowed:
                conn.execute(insert(r).values(holder=holder, sweep_id=sweep_id, energy_j=ahead.energy_kwh * 3.6e6,
                                              gpu_seconds=ahead.gpu_hours * 3600, created_at=time.time()))
        return allowed

    def release(self, holder: str) -> None:
        """Drop ``holder``'s reservation (its worker is done)."""
        self.release_all([holder])

    def release_all(self, holders: list[str]) -> None:
        """Drop the reservations of ``holders`` (workers that are done or dead)."""
        if not holders:
            return
        with self._write() as conn:
            conn.execute(delete(schema.reservations).where(schema.reservations.c.holder.in_(holders)))

    def reservation_holders(self) -> list[str]:
        """Who holds a reservation now."""
        with self._read() as conn:
            return list(conn.execute(select(schema.reservations.c.holder)).scalars())

    # -- budget events ----------------------------------------------------------------------

    def record_budget_event(self, event_: BudgetEvent) -> int:
        """Write a budget event (its sweep, if named, must exist)."""
        row = {k: v for k, v in event_.__dict__.items() if k != "sweep"}
        row["sweep_id"] = self._sweep_id(event_.sweep) if event_.sweep is not None else None
        with self._write() as conn:
            return int(conn.execute(insert(schema.budget_events).values(row)).inserted_primary_key[0])  # type: ignore[index]

    def budget_events(self, sweep: str | None = None) -> list[BudgetEvent]:
        """Budget events, oldest first (of one sweep, or all)."""
        b, s = schema.budget_events, schema.sweeps
        query = select(b, s.c.name.label("sweep_name")).outerjoin(s, s.c.id == b.c.sweep_id).order_by(b.c.id)
        if sweep is not None:
            query = query.where(b.c.sweep_id == self._sweep_id(sweep))
        with self._read() as conn:
            rows = conn.execute(query).all()
        fields = [c.name for c in b.columns if c.name not in ("id", "sweep_id")]
        return [BudgetEvent(sweep=row.sweep_name, **{f: getattr(row, f) for f in fields}) for row in rows]
