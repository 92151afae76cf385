"""Writing finished trials to the ledger off the trial's critical path.

A plugin hands each finished trial's interval to the :class:`Recorder`; its thread waits until
the meter has made the interval's energy final (one counter step, about 0.1 s), then writes the
records it has in one transaction, through a :class:`~auditor.ledger.writer.LedgerWriter`:
if the ledger does not answer, the records are held back (in memory and in a spool file) and
written with the next batch, and a warning says why: the search goes on. ``flush`` (also run at
exit) waits until everything handed over is written.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from auditor.ledger import Ledger, TrialRecord, TrialState, Usage
from auditor.ledger.writer import LedgerWriter
from auditor.meters.attribution import Interval
from auditor.meters.sampler import Measurement, Meter
from auditor.model.units import JOULES_PER_KWH
from auditor.search.records import IdleMeasurement, jsonable_params, record_for

logger = logging.getLogger("auditor")


@dataclass
class _Job:
    interval: Interval
    fields: dict[str, Any]
    record: TrialRecord | None = None  # built already, from the interval's final measurement


def _params_so_far(fields: dict[str, Any]) -> dict[str, Any]:
    """A running trial's parameters so far, from the plugin's ``params_of`` (none if it fails)."""
    params_of = fields.get("params_of")
    try:
        return jsonable_params(params_of()) if params_of is not None else {}
    except Exception:  # noqa: BLE001 - a heartbeat without params beats no heartbeat
        return {}


@dataclass
class _Start:
    interval: Interval
    fields: dict[str, Any]


HEARTBEAT_S = 5.0  # a running trial's row is refreshed this often, so a kill loses at most this much


class Recorder:
    """Writes trials to one ledger from a background thread.

    Args:
        ledger: the ledger's path or URL.
        meter: the meter the intervals belong to.
        sweep: the sweep the trials belong to (created if needed).
        framework: ``optuna``, ``ray``...
        sweep_attrs: stored with the sweep when it is created.
        on_record: called with each record once its energy is final (before it is written).
        timeout_s: how long a locked or silent ledger is waited for before records are held back.
        spool_dir: where held-back records are kept on disk (default: the setting's default).
    """

    def __init__(
        self,
        ledger: str,
        meter: Meter,
        sweep: str,
        framework: str,
        sweep_attrs: dict[str, Any] | None = None,
        on_record: Callable[[TrialRecord], None] | None = None,
        timeout_s: float = 30.0,
        spool_dir: str | None = None,
    ) -> None:
        self.meter = meter
        self.on_record = on_record
        self.sweep = sweep
        self.writer = LedgerWriter(ledger, sweep, framework, sweep_attrs, timeout_s=timeout_s, spool_dir=spool_dir)
        self._jobs: queue.Queue[_Job | _Start | threading.Event] = queue.Queue()
        self._running: dict[int, tuple[Interval, dict[str, Any], float]] = {}  # interval id -> ..., last beat
        self.heartbeat_s = HEARTBEAT_S
        self._pending: dict[int, tuple[Interval, str]] = {}  # interval id -> interval, trial key
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="auditor-recorder", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    @property
    def ledger(self) -> Ledger | None:
        """The ledger, or None while it could not be opened (the writer's thread retries)."""
        return self.writer.ledger

    @property
    def written(self) -> int:
        """How many records were written so far."""
        return self.writer.written

    def start(self, interval: Interval, **fields: Any) -> None:
        """A trial started: its row is written as ``running`` at once (from the thread) and
        refreshed every ``heartbeat_s`` with its energy so far, so that a search killed
        mid-trial leaves the trial in the ledger with its energy up to the last heartbeat.

        ``fields``: ``trial_key``, ``wall_start`` and optionally ``number``, ``name``.
        """
        self._jobs.put(_Start(interval, fields))

    def submit(self, interval: Interval, **fields: Any) -> None:
        """Record the trial of a closed ``interval`` once its energy is final.

        ``fields`` are :func:`auditor.search.records.record_for`'s keyword arguments but the
        measurement and the sweep.
        """
        with self._lock:
            self._pending[interval.id] = (interval, str(fields.get("trial_key", "")))
        self._jobs.put(_Job(interval, fields))

    def expect(self, interval: Interval, trial_key: str) -> None:
        """A trial ended and its record follows (:meth:`submit_record` or :meth:`submit`): its
        energy counts in :meth:`pending_usage` from now, while its measurement is made final."""
        with self._lock:
            self._pending[interval.id] = (interval, trial_key)

    def submit_record(self, interval: Interval, record: TrialRecord) -> None:
        """Write ``record``, already built from ``interval``'s final measurement, as it is: the
        figures a plugin showed from it (Optuna's user attributes) are the ledger's."""
        self.expect(interval, record.trial_key)
        self._jobs.put(_Job(interval, {}, record))

    def record_now(self, measurement: Measurement | IdleMeasurement | None, **fields: Any) -> None:
        """Record a trial whose measurement is already known (one seen after the fact)."""
        self._write([record_for(measurement, sweep=self.sweep, **fields)])

    def pending_usage(self) -> Usage:
        """Energy and GPU time of trials handed over but not yet written (as measured so far),
        each trial once, with their keys: a tally leaves the ledger's rows of these trials out
        (a heartbeat, or the final row written since this was read), so that each trial is
        counted once, whether it is queued, being written or in the ledger."""
        with self._lock:
            intervals = list(self._pending.values())
            unwritten = self.writer.held
        keys = {key for _, key in intervals}
        latest: dict[str, Any] = {}
        for record in unwritten:  # one record a trial: a newer heartbeat, or its final record
            current = latest.get(record.trial_key)
            if record.trial_key not in keys and (current is None or current.state is TrialState.RUNNING):
                latest[record.trial_key] = record
        joules = sum(sum(iv.energy.values()) for iv, _ in intervals) + sum(r.energy_joules for r in latest.values())
        now = self.meter.clock()  # (an interval being closed has no end yet)
        gpu_seconds = sum(
            ((iv.end if iv.end is not None else now) - since) for iv, _ in intervals
            for key, since in iv.devices.items() if key.startswith("gpu:")
        ) + sum(r.gpu_seconds for r in latest.values())
        return Usage(joules / JOULES_PER_KWH, gpu_seconds / 3600.0, len(intervals) + len(latest), frozenset(keys | set(latest)))

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every trial handed over has been written (or held back by a fault).

        Returns False if that took longer than ``timeout``.
        """
        if not self._thread.is_alive():
            return True
        done = threading.Event()
        self._jobs.put(done)
        return done.wait(timeout)

    def close(self) -> None:
        """Write what is left; what the ledger still refuses stays in the spool file."""
        self.flush()
        self.writer.close()

    def _run(self) -> None:
        while True:
            try:
                batch: list[Any] = [self._jobs.get(timeout=self.heartbeat_s)]
            except queue.Empty:
                batch = []
            while True:
                try:
                    batch.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            now = time.time()
            for item in batch:
                if isinstance(item, _Start):
                    self._running[item.interval.id] = (item.interval, item.fields, 0.0)
            jobs = [item for item in batch if isinstance(item, _Job)]
            for job in jobs:
                self._running.pop(job.interval.id, None)
            records = self._heartbeats(now)
            for job in jobs:
                if job.record is not None:
                    records.append(job.record)
                    continue
                try:
                    measurement: Measurement | None = self.meter.measure(job.interval)
                except Exception as exc:  # noqa: BLE001 - a record without energy beats no record
                    logger.warning("energy of a trial not measured: %s", exc)
                    measurement = None
                records.append(record_for(measurement, sweep=self.sweep, **job.fields))
            self._write(records, [job.interval.id for job in jobs])
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()

    def _heartbeats(self, now: float) -> list[TrialRecord]:
        """``running`` rows for the open trials not refreshed for ``heartbeat_s``."""
        records = []
        for interval_id, (interval, fields, beat) in list(self._running.items()):
            if now - beat < self.heartbeat_s:
                continue
            try:
                measurement: Measurement | None = self.meter.snapshot(interval)
            except Exception:  # noqa: BLE001
                measurement = None
            records.append(record_for(measurement, sweep=self.sweep, state=TrialState.RUNNING, wall_end=now,
                                      name=fields.get("name"), number=fields.get("number"), run=fields.get("run"),
                                      params=_params_so_far(fields) if beat else {},  # none suggested at its start: no read
                                      trial_key=fields["trial_key"], wall_start=fields["wall_start"],
                                      flags=["heartbeat"]))
            self._running[interval_id] = (interval, fields, now)
        return records

    def _write(self, records: list[TrialRecord], interval_ids: list[int] | None = None) -> None:
        if self.on_record is not None:
            for record in records:
                try:
                    self.on_record(record)
                except Exception as exc:  # noqa: BLE001 - a record without energy beats no record
                    logger.warning("%s", exc)
        with self._lock:  # the trials move from "running" to "to write" at once: the tally sees them throughout
            self.writer.hold(records)
            for interval_id in interval_ids or []:
                self._pending.pop(interval_id, None)
        self.writer.write()
