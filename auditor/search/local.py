"""The trials of a search that run in this process (Optuna's threads, a worker process of a
shared study): each one an interval on this process's meter, its heartbeat rows while it runs,
its record written in the background, and the energy between trials kept apart as the search's
idle overhead.

Example:
    >>> import os, tempfile
    >>> from auditor.ledger import TrialState
    >>> from auditor.meters import process_meter
    >>> from auditor.search.recorder import Recorder
    >>> ledger = os.path.join(tempfile.mkdtemp(), "ledger.db")
    >>> trials = LocalTrials(Recorder(ledger, process_meter(), "doc", "optuna"))
    >>> trials.begin(7, trial_key="doc/0", number=0)
    >>> interval = trials.end(7, trial_key="doc/0", name=None, state=TrialState.COMPLETE, number=0)
    >>> trials.recorder.flush()
    True
    >>> trials.recorded(7), trials.recorder.ledger.count_trials("doc")
    (True, 1)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from auditor.ledger import TrialRecord, TrialState, Usage
from auditor.meters.attribution import Interval
from auditor.meters.sampler import Measurement
from auditor.model.units import JOULES_PER_KWH
from auditor.search.recorder import Recorder
from auditor.search.records import IdleMeasurement, record_for

logger = logging.getLogger("auditor")


class LocalTrials:
    """Opens and closes the intervals of the trials running in this process and records them.

    Args:
        recorder: writes the records (its meter is the one the intervals open on).
        devices: the GPUs each trial uses: ``"auto"`` (those this process holds a CUDA context
            on), ``"all"``, or indices/UUIDs.
        idle_key: the trial key of the row holding the energy between trials, which
            :meth:`record_idle` writes and :meth:`pending_usage` counts as it accrues.
        own_threads: each trial runs in the thread that begins it (Optuna's ``n_jobs``): on the
            CPU-time estimate it is charged that thread's own CPU time first.
        idle_owner: who owns the meter's idle energy for this search (:meth:`Meter.own_idle`),
            if it took it before this was made (a plugin, from its own start); else this does, now.

    ``key`` is the framework's own id of a trial (unique in this process); ``fields`` are
    :func:`~auditor.search.records.record_for`'s keyword arguments but the measurement, the
    sweep and the wall times, which this class adds.
    """

    def __init__(self, recorder: Recorder, devices: Any = "auto", idle_key: str = "idle",
                 idle_owner: object | None = None, own_threads: bool = False) -> None:
        self.recorder = recorder
        self.meter = recorder.meter
        self.devices = devices
        self.idle_key = idle_key
        self.own_threads = own_threads
        self._open: dict[Hashable, tuple[Interval, float]] = {}  # key -> interval, wall start
        self._recorded: set[Hashable] = set()
        self._lock = threading.Lock()
        self._since = time.time()
        self._owner = idle_owner if idle_owner is not None else self
        if idle_owner is None:
            self.meter.own_idle(self)  # the idle energy from now on is this search's (until a newer one's)

    def begin(self, key: Hashable, *, trial_key: str, number: int | None = None, name: str | None = None,
              params: Callable[[], dict[str, Any]] | None = None, run: str | None = None) -> None:
        """A trial started: its interval opens and its ``running`` row is written; ``params``
        gives its parameters so far to each heartbeat (a search killed mid-trial keeps them).
        A trial already begun or recorded here is left as it is: a framework that announces a
        trial again (a ``Trial`` object built anew for it) opens no second interval, which would
        take a share of every later trial's energy and never close."""
        with self._lock:
            if key in self._open or key in self._recorded:
                return
            interval = self.meter.begin(gpus=self.devices, own_thread=self.own_threads)
            wall_start = interval.start + self._wall_offset()  # the interval's own start, as a wall time
            self._open[key] = (interval, wall_start)
        self.recorder.start(interval, trial_key=trial_key, number=number, name=name, wall_start=wall_start,
                            params_of=params, run=run)

    def _close(self, key: Hashable, trial_key: str) -> tuple[Interval, float, float] | None:
        """Close the interval of the trial ``key``: it, its wall start and end (None for a trial
        never begun here)."""
        with self._lock:
            started = self._open.pop(key, None)
            if started is not None:  # counted as pending from now: no moment where a tally misses it
                self.recorder.expect(started[0], trial_key)
        if started is None:
            return None
        interval, wall_start = started
        self.meter.end(interval)
        assert interval.end is not None
        return interval, wall_start, interval.end + self._wall_offset()

    def _wall_offset(self) -> float:
        """Wall time minus the meter's clock now: a record's times are its interval's, so that
        the ledger's start and end bound exactly the span its energy was measured over."""
        return time.time() - self.meter.clock()

    def end(self, key: Hashable, **fields: Any) -> Interval | None:
        """A trial ended: its interval closes and its record is written once its energy is
        final. Returns the interval (None for a trial that was never begun here)."""
        closed = self._close(key, str(fields.get("trial_key", "")))
        if closed is None:
            return None
        interval, wall_start, wall_end = closed
        self.recorder.submit(interval, wall_start=wall_start, wall_end=wall_end, **fields)
        with self._lock:
            self._recorded.add(key)
        return interval

    def finish(self, key: Hashable, *, timeout: float = 1.0, **fields: Any) -> TrialRecord | None:
        """A trial ended: like :meth:`end`, but its energy is made final now (at once for the
        sources read at the end, CPU and memory; one counter step, about 0.1 s, for a GPU) and
        its ledger record built here, so that what a plugin shows from the returned record is
        what the ledger holds. Returns None for a trial never begun here, or when the energy
        could not be made final within about ``timeout`` seconds (then recorded as by :meth:`end`).

        Example:
            >>> import os, tempfile
            >>> from auditor.meters import process_meter
            >>> trials = LocalTrials(Recorder(os.path.join(tempfile.mkdtemp(), "l.db"), process_meter(), "doc", "optuna"))
            >>> trials.begin(1, trial_key="doc/0", number=0)
            >>> record = trials.finish(1, trial_key="doc/0", name=None, state=TrialState.COMPLETE, number=0)
            >>> trials.recorder.flush()
            True
            >>> [written] = trials.recorder.ledger.trials("doc")
            >>> written.energy_kwh == record.energy_kwh, written.gpu_hours == record.gpu_hours
            (True, True)
        """
        closed = self._close(key, str(fields.get("trial_key", "")))
        if closed is None:
            return None
        interval, wall_start, wall_end = closed
        self.recorder.expect(interval, str(fields.get("trial_key", "")))  # counted by the tally while it waits
        record: TrialRecord | None = None
        try:
            measurement = self.meter.measure(interval, timeout=timeout)
            record = record_for(measurement, sweep=self.recorder.sweep, wall_start=wall_start, wall_end=wall_end, **fields)
        except Exception as exc:  # noqa: BLE001 - the recorder's thread measures it then
            logger.debug("trial %s not final at its end: %s", fields.get("trial_key"), exc)
        if record is not None:
            self.recorder.submit_record(interval, record)
        else:
            self.recorder.submit(interval, wall_start=wall_start, wall_end=wall_end, **fields)
        with self._lock:
            self._recorded.add(key)
        return record

    def so_far(self, key: Hashable) -> tuple[Measurement, float] | None:
        """The energy and GPU time of a running trial up to the meter's last reading (never more
        than its final record will hold), and its wall start. None for a trial not running here."""
        with self._lock:
            started = self._open.get(key)
        return (self.meter.snapshot(started[0]), started[1]) if started is not None else None

    def pending_usage(self) -> Usage:
        """What this process spent that the ledger does not hold yet: its trials handed over
        and not written, and the energy between trials so far (its row, if written, is older:
        the tally leaves it out by its key). What a budget adds to the ledger's sum."""
        pending = self.recorder.pending_usage()
        idle = self._idle_since_start()
        return Usage(pending.energy_kwh + sum(idle.values()) / JOULES_PER_KWH, pending.gpu_hours, pending.trials,
                     pending.keys | {self.idle_key})

    def _idle_since_start(self) -> dict[str, float]:
        """Idle joules per domain that went to this search since it began (the meter gives each
        idle joule to one search: :meth:`~auditor.meters.sampler.Meter.own_idle`)."""
        by_domain: dict[str, float] = {}
        for key, joules in self.meter.idle_of(self._owner).items():
            domain = self.meter.devices[key].domain
            by_domain[domain] = by_domain.get(domain, 0.0) + joules
        return by_domain

    def release_idle(self) -> None:
        """This search draws no more idle energy (its search is over); its row keeps what it took."""
        self.meter.release_idle(self._owner)

    def recorded(self, key: Hashable) -> bool:
        """True once the trial was handed over for recording."""
        with self._lock:
            return key in self._recorded

    def record_past(self, key: Hashable, wall_start: float, wall_end: float, **fields: Any) -> None:
        """A trial that ran before this process watched it: measured after the fact from the
        energy no interval held over its span (flagged so by the meter)."""
        offset = time.time() - self.meter.clock()
        measurement: Measurement | None
        try:
            measurement = self.meter.measure_past(wall_start - offset, wall_end - offset, gpus=self.devices)
        except Exception as exc:  # noqa: BLE001 - the recorder's thread measures it then
            logger.warning("energy of trial %s not measured: %s", fields.get("trial_key"), exc)
            measurement = None
        self.recorder.record_now(measurement, wall_start=wall_start, wall_end=wall_end, **fields)
        with self._lock:
            self._recorded.add(key)

    def record_idle(self) -> None:
        """Record the energy no trial held since this began (rewritten each time, one row keyed
        :attr:`idle_key`). Never raises: a missing idle row must not break the end of a search."""
        try:
            by_domain = self._idle_since_start()
        except Exception as exc:  # noqa: BLE001 - the recorder's thread measures it then
            logger.warning("idle energy between trials not recorded: %s", exc)
            return
        methods = {d.domain: d.method for d in self.meter.devices.values()}
        self.recorder.record_now(
            IdleMeasurement(by_domain, methods) if by_domain else None,
            trial_key=self.idle_key, name="idle between trials", state=TrialState.IDLE,
            wall_start=self._since, wall_end=time.time(),
        )
