"""Writing a plugin's trials to a ledger that may stop answering, without losing any.

A :class:`LedgerWriter` is how the plugins write. It never raises: trials the ledger refuses
(its disk full or read-only, locked past the timeout, its server restarting or never reached)
are held back in memory and in a spool file (:mod:`auditor.ledger.spool`), one warning says
why, and they are written with the next write once the ledger answers again. A ledger that
could not be opened is tried again at most every ``retry_s``. On opening, the trials that
dead processes left in spool files for the same ledger are written too.

The ledger is written on the writer's own thread, and no caller waits on it longer than
``spool_after_s`` (a second): a server that accepts and never answers (a stalled server, a
partition behind a proxy) leaves the held-back trials in the spool file within that second, the
search goes on, and a warning says so once the ledger has been silent for ``timeout_s``. A kill
during the outage then loses at most the trial in flight.

One bad record never blocks the others: a record holding a value the ledger must not store
(NaN energy, a negative time) is set aside alone when it is handed over, one the ledger refuses
for its content is set aside alone when it is written, and the rest of the batch is written.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from auditor.errors import AuditorError, InvalidRecordError
from auditor.ledger.calls import LedgerThread
from auditor.ledger.checks import checked, record_to_json
from auditor.ledger.records import TrialRecord
from auditor.ledger.spool import Spool, replay, trial_count, write_apart
from auditor.ledger.store import Ledger
from auditor.ledger.url import display

logger = logging.getLogger("auditor")


SPOOL_AFTER_S = 1.0  # a handed-over trial is on local disk this soon, whatever the ledger does
CHECKPOINT_EVERY_S = 5.0  # a SQLite ledger's log is copied into its file this often (or every CHECKPOINT_TRIALS)
CHECKPOINT_TRIALS = 200
UNSURE_LIMIT = 10_000  # trials kept to write again should a SQLite ledger's log be deleted before a checkpoint


class LedgerWriter:
    """Writes the trials of one sweep, holding back what the ledger refuses.

    Args:
        target: the ledger's path or URL.
        sweep: the sweep the trials belong to (created on first contact).
        framework: ``optuna``, ``ray``...
        sweep_attrs: stored with the sweep when it is created.
        timeout_s: how long a locked or silent ledger is waited for, per write.
        spool_dir: where held-back trials are kept on disk (default: the setting's default).
        retry_s: how often a ledger that could not be opened is tried again.
        spool_after_s: how long a write is waited for before its trials go to the spool file
            (the write goes on in the background).

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> writer = LedgerWriter(str(folder / "ledger.db"), "demo", "run", spool_dir=folder / "spool")
        >>> writer.write([TrialRecord(sweep="demo", trial_key="1", state="complete", start_time=0.0)])
        True
        >>> writer.ledger.count_trials("demo"), writer.held
        (1, [])
    """

    def __init__(
        self,
        target: str,
        sweep: str,
        framework: str,
        sweep_attrs: dict[str, Any] | None = None,
        *,
        timeout_s: float = 30.0,
        spool_dir: str | None = None,
        retry_s: float = 5.0,
        spool_after_s: float = SPOOL_AFTER_S,
    ) -> None:
        self.target, self.sweep, self.timeout_s, self.retry_s = target, sweep, timeout_s, retry_s
        self.spool_after_s = spool_after_s
        self.spool_dir = spool_dir
        self._sweeps = {sweep: (framework, dict(sweep_attrs or {}))}
        self.ledger: Ledger | None = None
        self._spool: Spool | None = None
        self._held: list[TrialRecord] = []
        self._lock = threading.Lock()  # guards _held; never held while the ledger is written
        self._write_lock = threading.Lock()  # guards _in_flight
        self._spool_lock = threading.Lock()  # one rewrite of the spool file at a time
        self._tried_at: float | None = None
        self._warned = False
        self._spool_failed = False
        self._sweeps_exist = False
        self.problem: str | None = None  # why the last write did not go through
        self.written = 0
        self._thread = LedgerThread("auditor-ledger")
        self._in_flight: tuple[Future[bool], float] | None = None  # the ledger call under way, since when
        self._unsure: list[TrialRecord] = []  # written, not yet checkpointed into a SQLite ledger's file
        self._checkpointed_at = time.monotonic()
        opening = self._thread.call(self.connect)
        try:
            opening.result(timeout=self.timeout_s)
        except FutureTimeout:
            self._warn(f"it did not answer within {self.timeout_s:g} s")

    # -- the ledger --------------------------------------------------------------------------

    def connect(self) -> Ledger | None:
        """The open ledger, opening it if needed (at most every ``retry_s``); None if it cannot
        be opened now (a warning says why)."""
        if self.ledger is not None:
            return self.ledger
        now = time.monotonic()
        if self._tried_at is not None and now - self._tried_at < self.retry_s:
            return None
        self._tried_at = now
        try:
            ledger = Ledger.open(self.target, busy_timeout_s=self.timeout_s)
        except AuditorError as exc:
            self._warn(str(exc))
            return None
        self.ledger = ledger
        try:
            replay(ledger, self.spool_dir)
        except AuditorError as exc:
            logger.warning("trials held back by an earlier process not written yet: %s", exc)
        except Exception as exc:  # noqa: BLE001 - nothing another process left behind may stop this one's trials
            logger.warning("trials held back by an earlier process not written (%s: %s)", type(exc).__name__, exc)
        return ledger

    # -- writing -----------------------------------------------------------------------------

    @property
    def held(self) -> list[TrialRecord]:
        """The trials handed over and not written yet."""
        with self._lock:
            return list(self._held)

    def hold(self, records: list[TrialRecord]) -> None:
        """Take ``records`` to write with the next :meth:`write`; one holding a value the ledger
        must not store is set aside alone (a warning names it)."""
        valid = []
        for record in records:
            try:
                valid.append(checked(record))
            except InvalidRecordError as exc:
                self._set_aside([(record, str(exc))])
        with self._lock:
            self._held.extend(valid)

    def write(self, records: list[TrialRecord] | None = None, wait_s: float | None = None) -> bool:
        """Write ``records`` and every trial held back before them, in one transaction, on the
        writer's thread, waiting at most ``wait_s`` (default ``spool_after_s``): past it, the
        held-back trials are kept in the spool file and the write goes on in the background.

        Returns:
            True if nothing is held back any more.
        """
        if records:
            self.hold(records)
        patient = wait_s is not None  # a caller that names its wait waits it, even on a silent ledger
        wait_s = self.spool_after_s if wait_s is None else wait_s
        deadline = time.monotonic() + wait_s
        while True:
            with self._write_lock:
                if self._in_flight is None or self._in_flight[0].done():
                    if not self.held:
                        return True
                    self._in_flight = (self._thread.call(self._write_held), time.monotonic())
                in_flight, since = self._in_flight
            silent = time.monotonic() - since >= self.spool_after_s  # an earlier write still waits
            wait = max(0.0, deadline - time.monotonic()) if patient or not silent else 0.0
            try:
                if not in_flight.result(timeout=wait):
                    return False  # refused: held back, on disk (a warning said why)
            except FutureTimeout:
                self._keep()
                if time.monotonic() - since >= self.timeout_s:
                    self._warn(f"it has not answered for {self.timeout_s:g} s")
                return False
            if not self.held:
                return True
            # more came while that write went on: write them too, within the same wait

    def _write_held(self) -> bool:
        """Write what is held back now (on the writer's thread); True if it went through."""
        todo = self.held
        if not todo:
            return True
        if not self._write_to_ledger(todo):
            self._keep()
            return False
        with self._lock:
            done = {id(record) for record in todo}
            self._held = [r for r in self._held if id(r) not in done]
        self.written += len(todo)
        if self._spool is not None:
            self._keep()  # the spool file holds what is still to write, no more
        return True

    def _write_to_ledger(self, todo: list[TrialRecord]) -> bool:
        ledger = self.connect()
        if ledger is None:
            return False
        try:
            if not self._sweeps_exist:
                for name, (framework, attrs) in self._sweeps.items():
                    ledger.ensure_sweep(name, framework=framework, attrs=attrs)
                self._sweeps_exist = True
            refused = write_apart(ledger, todo)
        except AuditorError as exc:
            self._warn(str(exc))
            return False
        left_out = {id(record) for record, _ in refused}
        if not self._journal_kept(ledger, [r for r in todo if id(r) not in left_out]):
            return False
        if self._warned:
            logger.warning("ledger %s answers again; %d held-back trials written", ledger.location, len(todo))
        self._warned = False
        self.problem = None
        self._set_aside(refused)
        return True

    def _journal_kept(self, ledger: Ledger, written: list[TrialRecord]) -> bool:
        """After a write: whether what this writer wrote is safe in the ledger. A SQLite
        ledger's ``-wal``/``-shm`` files deleted or replaced meanwhile hid every write since the
        last checkpoint from everyone else: those trials are held again and written through a
        new connection (a warning says so). Otherwise the log is checkpointed into the file every
        few seconds, and what it held forgotten."""
        if ledger.journal_replaced():
            again, self._unsure = [*self._unsure, *written], []
            with self._lock:
                ids = {id(record) for record in again}
                self._held = [*again, *(r for r in self._held if id(r) not in ids)]
            ledger.close()
            self.ledger, self._tried_at, self._sweeps_exist = None, None, False
            why = (f"its files {ledger.location}-wal and -shm were deleted or replaced while this process wrote it "
                   "(deleted, or made anew by another process)")
            self.problem = why
            warnings.warn(f"auditor: ledger {ledger.location}: {why}; the trials written since its last "
                          f"checkpoint are written again", RuntimeWarning, stacklevel=4)
            return False
        self._unsure += written
        now = time.monotonic()
        if now - self._checkpointed_at >= CHECKPOINT_EVERY_S or len(self._unsure) >= CHECKPOINT_TRIALS:
            self._checkpointed_at = now  # not after every write: its CPU would be charged to the running trials
            if ledger.checkpoint():
                self._unsure = []
        if len(self._unsure) > UNSURE_LIMIT:
            del self._unsure[:-UNSURE_LIMIT]
        return True

    def _spool_file(self) -> Spool:
        if self._spool is None:
            self._spool = Spool(self._location(), self.spool_dir)
        return self._spool

    def _set_aside(self, refused: list[tuple[TrialRecord, str]]) -> None:
        """Keep records the ledger must not take apart from the others (``audit doctor`` lists them)."""
        if refused:
            self._spool_file().set_aside([record_to_json(r) for r, _ in refused], "; ".join(sorted({why for _, why in refused})))

    def _keep(self) -> None:
        """Keep the held-back trials on disk too, so that a kill does not lose them (the file
        is deleted once none is held back). From either thread: the file follows the last state."""
        with self._spool_lock:
            todo = self.held
            if not todo:
                if self._spool is not None:
                    self._spool.clear()
                return
            self._keep_on_disk(todo)

    def _keep_on_disk(self, todo: list[TrialRecord]) -> None:
        spool = self._spool_file()
        try:
            spool.keep(todo, self._sweeps)
            self._spool_failed = False
        except (OSError, AuditorError) as exc:
            if not self._spool_failed:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                logger.warning("%s not written (%s): the held-back trials are in memory only", spool.path, why)
            self._spool_failed = True

    def _location(self) -> str:
        if self.ledger is not None:
            return self.ledger.location
        try:
            return Ledger.location_of(self.target)
        except AuditorError:
            return display(self.target)  # never a password, even in a URL that does not parse

    @property
    def spool_path(self) -> Path | None:
        """The spool file holding the held-back trials, if any was written."""
        return self._spool.path if self._spool is not None else None

    def _warn(self, why: str) -> None:
        self.problem = why
        if self._warned:
            return
        self._warned = True
        warnings.warn(
            f"auditor: trials held back, ledger {display(self.target)} not written: {why}; "
            f"the search goes on and they are written once the ledger answers",
            RuntimeWarning,
            stacklevel=3,
        )

    def close(self) -> None:
        """A last try; what is still held back stays in the spool file, for the next process
        (or ``audit report``) that opens this ledger to write."""
        silent = self._in_flight is not None and not self._in_flight[0].done() and (
            time.monotonic() - self._in_flight[1] >= self.timeout_s)  # waited for already
        if not self.write(wait_s=0.0 if silent else self.timeout_s) and self._spool is not None:
            trials = trial_count(self.held)
            logger.warning(
                "%s could not be written to the ledger %s; kept in %s and written by the next "
                "auditor command or search that opens this ledger",
                f"{trials} trials" if trials else "the sweep's energy between trials",
                display(self.target), self._spool.path,
            )
        self._thread.close()
