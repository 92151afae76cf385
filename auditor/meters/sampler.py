"""The meter: one background sampler per process, and the intervals measured against it.

The sampler thread reads every source on its own cadence into the timeline and feeds each
sample to the attribution. Opening and closing an interval (a trial) only takes a lock and
reads the clock: nothing slow happens on the trial's critical path. The interval's energy is
final once each of its devices has a sample past its end (about one update period later);
:meth:`Meter.measure` waits for that, or reads the sources at once if it takes too long.

If a device stops answering (a GPU lost mid-run), its energy from then on is estimated from its
rated power, the figure says so, and a warning says why: the search goes on.

Example:
    >>> from auditor.meters.simulated import PowerProfile, SimulatedGpuSource
    >>> with Meter([SimulatedGpuSource([PowerProfile.constant(300.0)])]) as meter:
    ...     interval = meter.begin(gpus="all")
    ...     _ = meter.end(interval)
    ...     measurement = meter.measure(interval)
    >>> measurement.energy["gpu"].method, measurement.gpu_seconds > 0
    ('counter', True)
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from auditor.meters.attribution import Accountant, Interval
from auditor.meters.base import Device, EnergyReading, EnergySource, worst_method
from auditor.meters.cadence import cadences
from auditor.meters.cuda import ASSUMED_FLAG, CudaUse, cuda_use, matching_keys, other_namespace
from auditor.meters.timeline import DEFAULT_CAPACITY, Timeline

logger = logging.getLogger("auditor")

HOLDER_REFRESH_S = 1.0


@dataclass(frozen=True)
class Measurement:
    """The energy and device time of one closed interval.

    Attributes:
        duration_s: wall seconds from start to end.
        energy: per domain (gpu, cpu, memory), joules and the least exact method that
            contributed.
        per_device: joules per device key.
        gpus: the GPUs the interval held.
        gpu_seconds: sum over its GPUs of the seconds it held each.
        flags: notes on the figures (``below-sensor-resolution``, ``device-lost``...).
    """

    duration_s: float
    energy: dict[str, EnergyReading]
    per_device: dict[str, float]
    gpus: list[Device]
    gpu_seconds: float
    flags: list[str] = field(default_factory=list)

    @property
    def joules(self) -> float:
        """Total joules over every domain."""
        return sum(reading.joules for reading in self.energy.values())


def _thread_cpu(thread: int) -> float | None:
    """CPU seconds of thread ``thread`` (a ``threading.get_ident()``), or None where the
    platform cannot tell or the thread has ended."""
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(thread))
    except (AttributeError, OSError, OverflowError):
        return None


def synchronize_cuda() -> None:
    """Wait for queued GPU work where torch with CUDA is in use, so it lands in this interval."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
    except Exception as exc:  # noqa: BLE001 - metering must never break the user's code
        logger.debug("torch.cuda.synchronize failed: %s", exc)


class Meter:
    """Samples energy sources in a background thread and measures intervals against them.

    Args:
        sources: the energy sources to read.
        clock: monotonic time source (shared with the sources in tests).
        timeline_capacity: samples kept per device.
        root_pid: the process whose tree holds the GPUs of ``gpus="auto"`` intervals
            (default: this process).
        warn: how to tell the user about a lost device (default: ``warnings.warn``).
        cuda_probe: what the process tree shows of its CUDA use, for ``gpus="auto"`` where NVML
            lists none of its processes (:mod:`auditor.meters.cuda`).
    """

    def __init__(
        self,
        sources: Sequence[EnergySource],
        *,
        clock: Callable[[], float] = time.monotonic,
        timeline_capacity: int = DEFAULT_CAPACITY,
        root_pid: int | None = None,
        warn: Callable[[str], None] | None = None,
        cuda_probe: Callable[[set[int], bool], CudaUse] = cuda_use,
    ) -> None:
        self.sources = list(sources)
        self.clock = clock
        self.timeline = Timeline(timeline_capacity)
        self.devices: dict[str, Device] = {d.key: d for s in self.sources for d in s.devices()}
        self._source_of = {d.key: s for s in self.sources for d in s.devices()}
        self._accountant = Accountant()
        self._edge_sources = [s for s in self.sources if s.read_at_end]
        self._thread_metered = {id(s) for s in self.sources if any(d.thread_watts for d in s.devices())}
        self._source_locks = {id(s): threading.Lock() for s in self.sources}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._raw: dict[str, tuple[float, float]] = {}  # discrete devices: last value, read time
        self._last_sample: dict[str, tuple[float, float]] = {}  # device: time, joules
        self._lost: dict[str, float] = {}  # device: time lost
        self._held: set[str] = set()
        self._assumed: set[str] = set()  # GPUs taken as this process's without NVML's word
        self._cuda_probe = cuda_probe
        self._root_pid = root_pid if root_pid is not None else os.getpid()
        self._tree: Any = None
        self._warn = warn or (lambda message: warnings.warn(message, RuntimeWarning, stacklevel=2))
        self._next_due = {id(s): 0.0 for s in self.sources}
        self._read_cost = {id(s): 0.0 for s in self.sources}  # CPU seconds a read takes (smoothed)
        self._intervals = {id(s): s.poll_interval_s for s in self.sources}
        self._next_holder_refresh = 0.0
        self._holder_cost = 0.0  # CPU seconds a refresh of the GPUs' process lists takes (smoothed)
        self._holder_interval = HOLDER_REFRESH_S
        self.samples_taken = 0
        self._warned_gpus: set[str] = set()
        self._idle_owners: list[object] = []
        self._idle_of: dict[int, dict[str, float]] = {}
        self._idle_ids: dict[int, object] = {}  # every owner, kept: a later owner never gets an id whose idle is taken
        self._idle_unowned: dict[str, float] = {}
        self._idle_settled: dict[str, float] = {}
        self._idle_history: list[tuple[float, int | None]] = []  # (since, owner id): who took the idle when

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> Meter:
        """Take a first reading and start the sampler thread."""
        if self._thread is None:
            self._refresh_holders(self.clock())
            self._sample(self.sources)
            self._adapt_cadence()
            now = self.clock()
            self._next_due = {id(s): now + self.poll_interval(s) for s in self.sources}
            self._next_holder_refresh = now + self._holder_interval
            self._thread = threading.Thread(target=self._run, name="auditor-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Take a last reading of every source and stop the sampler."""
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join()
            self._thread = None
        self._sample(self.sources)
        for source in self.sources:
            source.close()

    def __enter__(self) -> Meter:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def poll_interval(self, source: EnergySource) -> float:
        """How often the sampler reads ``source`` now: its own cadence, or less often where
        reads are costly, so that reading every source takes under 1 % of a core."""
        return self._intervals[id(source)]

    @property
    def running(self) -> bool:
        """True while the sampler thread runs."""
        return self._thread is not None and self._thread.is_alive()

    # -- intervals (the critical path: a lock and the clock, nothing else) -------------------

    def resolve_gpus(self, gpus: str | Iterable[int | str] | None) -> tuple[list[str], bool]:
        """Device keys for ``gpus``: ``"auto"``/None (those this process holds), ``"all"``,
        or indices, UUIDs or keys. Returns the keys and whether more may be added later."""
        all_gpus = [d for d in self.devices.values() if d.is_gpu]
        if gpus is None or gpus == "auto":
            return sorted(self._held), True
        if gpus == "all":
            return [d.key for d in all_gpus], False
        if isinstance(gpus, (str, int)):
            gpus = [gpus]
        keys = []
        for wanted in gpus:
            match = [
                d.key for d in all_gpus
                if wanted in (d.index, d.key, d.key.removeprefix("gpu:")) or str(wanted) == str(d.index)
            ]
            if not match:
                known = ", ".join(f"{d.index} ({d.key})" for d in all_gpus) or "none"
                raise ValueError(f"no GPU {wanted!r} among those metered here: {known}")
            keys.extend(match)
        return keys, False

    def _gpus_or_none(self, gpus: str | Iterable[int | str] | None) -> tuple[list[str], bool, bool]:
        """:meth:`resolve_gpus`, but GPUs this meter does not have leave the interval on its CPU
        and memory (flagged ``gpu-not-found``, one warning) instead of losing all its energy."""
        try:
            keys, auto = self.resolve_gpus(gpus)
            return keys, auto, False
        except ValueError as exc:
            if str(exc) not in self._warned_gpus:
                self._warned_gpus.add(str(exc))
                self._warn(f"auditor: {exc}; CPU and memory are metered, the GPU is not (flagged gpu-not-found)")
            return [], False, True

    def begin(self, gpus: str | Iterable[int | str] | None = "auto", weight: float = 1.0,
              own_thread: bool = False) -> Interval:
        """Open an interval now on the given GPUs and on every CPU and memory device, and read
        the cheap sources (:meth:`read_now`), so the interval's share of them starts here.
        With ``own_thread``, the calling thread runs it (an Optuna ``n_jobs`` thread): on the
        CPU-time estimate it is charged that thread's CPU time, and shares only the rest of the
        process's (other threads, the sampler) with the intervals open beside it."""
        keys, auto, missing = self._gpus_or_none(gpus)
        others = [k for k, d in self.devices.items() if not d.is_gpu]
        with self._lock:
            now = self.clock()
            interval = Interval(start=now, devices=dict.fromkeys([*keys, *others], now), weight=weight, auto_gpus=auto)
            if missing:
                interval.flags.add("gpu-not-found")
            if own_thread:  # the calling thread runs it: its own CPU time is the interval's first
                interval.thread = threading.get_ident()
                interval.thread_cpu = _thread_cpu(interval.thread)
            self._accountant.open(interval)
        self.read_now()
        return interval

    def end(self, interval: Interval) -> Interval:
        """Close ``interval`` now (after flushing queued GPU work), and read the sources cheap
        enough to read at once, so its energy in their domains is final already."""
        synchronize_cuda()
        with self._lock:
            self._accountant.close(interval, self.clock())
        self.read_now()
        return interval

    def read_now(self) -> None:
        """Read the sources cheap enough to read at any moment (process CPU time, RAPL, the
        memory estimate) now: done at every interval's start and end, so an interval's energy in
        their domains follows its own work at every length, and before a snapshot, so a running
        interval's figure is current."""
        if self._edge_sources:
            self._sample(self._edge_sources)

    def measure(self, interval: Interval, timeout: float = 5.0) -> Measurement:
        """The interval's measurement, once final. Reads the sources at once if the sampler has
        not made it final within one poll period (or is not running)."""
        if interval.end is None:
            raise ValueError("end the interval before measuring it")
        patience = max((s.poll_interval_s for s in self.sources), default=0.0) * 2 + 0.05  # read now rather than wait for a slowed cadence
        if not interval.done.wait(patience if self.running else 0):
            self.flush()
            if not interval.done.wait(timeout):
                raise TimeoutError("the meter did not finalise the interval in time")
        return self._measurement(interval)

    def snapshot(self, interval: Interval) -> Measurement:
        """The measurement of an interval still open, as far as the readings go (a heartbeat):
        the cheap sources are read now (:meth:`read_now`), the others as of their last reading,
        and now if the sampler thread is late on them by more than a poll period (a starved CPU),
        so a running figure is never further behind than the sensor's own period and one poll."""
        now = self.clock()
        late = [s for s in self.sources if not s.read_at_end
                and self.running and now > self._next_due[id(s)] + self.poll_interval(s)]
        self._sample([*self._edge_sources, *late])
        with self._lock:
            copy = Interval(start=interval.start, devices=dict(interval.devices), end=interval.end or self.clock(),
                            energy=dict(interval.energy), methods={k: set(v) for k, v in interval.methods.items()})
        return self._measurement(copy)

    def measure_past(self, start: float, end: float, gpus: str | Iterable[int | str] | None = "auto") -> Measurement:
        """The measurement of a span that was not opened as an interval when it began (a trial
        seen only once it finished): the idle energy of its devices over the span, which no
        other interval held. Flagged ``after-the-fact``; also ``partial`` when the span began
        before the meter's history.
        """
        keys, _, missing = self._gpus_or_none(gpus)
        devices = [*keys, *(k for k, d in self.devices.items() if not d.is_gpu)]
        for _ in range(50):  # until every device has a reading past the end
            behind = [key for key in devices if self._last_sample.get(key, (-math.inf, 0.0))[0] < end]
            if not behind:
                break
            self._sample(self.sources)
            if all(self._last_sample.get(key, (-math.inf, 0.0))[0] >= end for key in behind):
                break  # read past the end at once: no wait (a stepped counter may need its next step)
            time.sleep(min(self._source_of[key].poll_interval_s for key in behind))
        interval = Interval(start=start, devices=dict.fromkeys(devices, start), end=end)
        interval.flags.add("after-the-fact")
        if missing:
            interval.flags.add("gpu-not-found")
        with self._lock:
            self._settle_idle()
            for key in devices:
                taken: list[tuple[float, float]] = []
                joules, covered_from = self._accountant.claim_idle(key, start, end, taken)
                self._take_back_idle(key, taken)
                interval.energy[key] = joules
                interval.methods[key] = {self.devices[key].method if key not in self._lost else "estimate-tdp"}
                if covered_from > start + 1e-3:
                    interval.flags.add("partial")
        return self._measurement(interval)

    def flush(self, max_reads: int = 50) -> None:
        """Read every source now, and again (on the fastest cadence, ``max_reads`` times at most)
        until every ended interval is final: a stepped counter may need its next step."""
        pause = min((s.poll_interval_s for s in self.sources), default=0.01)
        for _ in range(max_reads):
            self._sample(self.sources)
            if not self._accountant_has_pending():
                return
            time.sleep(pause)

    def _accountant_has_pending(self) -> bool:
        with self._lock:
            return any(iv.end is not None for iv in self._accountant.open_intervals())

    def idle_joules(self) -> dict[str, float]:
        """Per device, joules drawn while no interval held it."""
        with self._lock:
            return {key: self._accountant.idle(key) for key in self.devices}

    # -- idle energy, each joule to one owner -----------------------------------------------

    def _take_back_idle(self, key: str, taken: list[tuple[float, float]]) -> None:
        """Idle energy claimed by an interval after the fact leaves the idle of whoever owned it
        when it was drawn (under the lock, after a settling): counted once, by the interval."""
        for at, joules in taken:
            owner = next((o for since, o in reversed(self._idle_history) if since <= at), None)
            target = self._idle_of.get(owner, self._idle_unowned) if owner is not None else self._idle_unowned
            target[key] = target.get(key, 0.0) - joules
        self._idle_settled[key] = self._accountant.idle(key)

    def own_idle(self, owner: object) -> None:
        """Make ``owner`` (a search recording its idle energy) the one the idle energy drawn from
        now on goes to, until it lets go (:meth:`release_idle`) or a newer owner takes over:
        two searches alive in one process (two callbacks in a notebook) never both count the same
        idle joule. Idle energy drawn while no owner holds the meter is :meth:`unowned_idle`."""
        with self._lock:
            self._settle_idle()
            self._idle_owners.append(owner)
            self._idle_of.setdefault(id(owner), {})
            self._idle_ids[id(owner)] = owner
            self._idle_history.append((self.clock(), id(owner)))

    def release_idle(self, owner: object) -> None:
        """``owner`` takes no more idle energy (what it took stays its own); the previous owner
        still alive takes it again."""
        with self._lock:
            self._settle_idle()
            self._idle_owners = [o for o in self._idle_owners if o is not owner]
            self._idle_history.append((self.clock(), id(self._idle_owners[-1]) if self._idle_owners else None))

    def idle_of(self, owner: object) -> dict[str, float]:
        """Per device, the idle joules that went to ``owner`` (up to the last readings)."""
        with self._lock:
            self._settle_idle()
            return dict(self._idle_of.get(id(owner), {}))

    def unowned_idle(self) -> dict[str, float]:
        """Per device, idle joules drawn while no search owned the meter's idle energy."""
        with self._lock:
            self._settle_idle()
            return dict(self._idle_unowned)

    def _settle_idle(self) -> None:
        """Give the idle energy drawn since the last settling to the newest owner (under the lock)."""
        target = self._idle_of[id(self._idle_owners[-1])] if self._idle_owners else self._idle_unowned
        for key in self.devices:
            now = self._accountant.idle(key)
            target[key] = target.get(key, 0.0) + now - self._idle_settled.get(key, 0.0)
            self._idle_settled[key] = now

    def counter_deltas(self) -> dict[str, float]:
        """Per device, joules its readings rose since the meter started."""
        with self._lock:
            return {key: self._accountant.counter_delta(key) for key in self.devices}

    def _measurement(self, interval: Interval) -> Measurement:
        assert interval.end is not None
        by_domain: dict[str, float] = {}
        methods: dict[str, set[str]] = {}
        flags = set(interval.flags)
        gpus, gpu_seconds = [], 0.0
        for key, since in interval.devices.items():
            device = self.devices[key]
            by_domain[device.domain] = by_domain.get(device.domain, 0.0) + interval.energy.get(key, 0.0)
            methods.setdefault(device.domain, set()).update(interval.methods.get(key) or {device.method})
            flags.update(device.flags)
            if device.is_gpu:
                gpus.append(device)
                held = interval.end - since
                gpu_seconds += held
                if device.update_period_s and held < device.update_period_s:
                    flags.add("below-sensor-resolution")
            if key in self._lost and self._lost[key] <= interval.end:
                flags.add("device-lost")
            if key in self._assumed:
                flags.add(ASSUMED_FLAG)
        energy = {domain: EnergyReading(joules, worst_method(methods[domain])) for domain, joules in by_domain.items()}
        return Measurement(
            duration_s=interval.end - interval.start,
            energy=energy,
            per_device=dict(interval.energy),
            gpus=gpus,
            gpu_seconds=gpu_seconds,
            flags=sorted(flags),
        )

    # -- the sampler ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self.clock()
            due = [s for s in self.sources if self._next_due[id(s)] <= now]
            try:
                if due:
                    self._sample(due)
                    self._adapt_cadence()
                for source in due:
                    self._next_due[id(source)] = now + self.poll_interval(source)
                if now >= self._next_holder_refresh:
                    self._refresh_holders(now)
                    self._adapt_cadence()
                    self._next_holder_refresh = now + self._holder_interval
            except Exception as exc:  # noqa: BLE001 - the sampler must outlive any source bug
                logger.warning("sampler: %s: %s", type(exc).__name__, exc)
            wait = min(self._next_due.values(), default=now + 0.1) - self.clock()
            self._wake.wait(max(wait, 0.001))

    def _adapt_cadence(self) -> None:
        """Read costly sources (and refresh costly process lists) less often: every read and
        refresh together stay under 1 % of a core."""
        costs = [self._read_cost[id(s)] for s in self.sources] + [self._holder_cost]
        intervals = cadences(costs, [s.poll_interval_s for s in self.sources] + [HOLDER_REFRESH_S])
        self._intervals = {id(s): interval for s, interval in zip(self.sources, intervals, strict=False)}
        self._holder_interval = intervals[-1]

    def _sample(self, sources: Iterable[EnergySource]) -> None:
        """Read ``sources`` and feed their readings (called by the sampler thread, and by other
        threads at interval ends and flushes: each source is read and processed under its lock)."""
        samples: list[tuple[str, float, float, str]] = []
        for source in sources:
            with self._source_locks[id(source)]:
                if id(source) in self._thread_metered:  # fed at once: its threads' clocks beside its own
                    self._feed(self._read_source(source))
                else:
                    samples.extend(self._read_source(source))
        now = self.clock()
        for key, lost_at in list(self._lost.items()):
            last_time, last_joules = self._last_sample.get(key, (lost_at, 0.0))
            watts = self.devices[key].fallback_watts or 0.0
            samples.append((key, now, last_joules + watts * (now - last_time), "estimate-tdp"))
        self._feed(samples)

    def _read_source(self, source: EnergySource) -> list[tuple[str, float, float, str]]:
        """One reading of ``source`` as samples (time, cumulative joules, method); a stepped
        counter gives a sample only when it steps, timestamped between the reads around it."""
        before, cpu_before = self.clock(), time.thread_time()
        try:
            values = source.read()
        except Exception as exc:  # noqa: BLE001 - a failing source must not stop the others
            values = {}
            for device in source.devices():
                self._mark_lost(device.key, before, f"{type(exc).__name__}: {exc}")
        read_at = (before + self.clock()) / 2
        cost, smoothed = time.thread_time() - cpu_before, self._read_cost[id(source)]
        self._read_cost[id(source)] = cost if smoothed == 0.0 else 0.8 * smoothed + 0.2 * cost
        for key, reason in source.lost().items():
            self._mark_lost(key, read_at, reason)
        samples = []
        for key, joules in values.items():
            sample_at = read_at
            if source.discrete:
                previous = self._raw.get(key)
                self._raw[key] = (joules, read_at)
                if previous is not None:
                    if joules == previous[0]:
                        period = self.devices[key].update_period_s or source.poll_interval_s
                        last_time = self._last_sample.get(key, (read_at, 0.0))[0]
                        if read_at - last_time < 3 * period:
                            continue  # unchanged: wait for the next step
                    else:
                        # the last step fell after the last read that saw the old value, and
                        # within one update period of now (reads far apart: a costly source)
                        period = self.devices[key].update_period_s
                        since = max(previous[1], read_at - period) if period else previous[1]
                        sample_at = (since + read_at) / 2
            samples.append((key, sample_at, joules, self.devices[key].method))
        return samples

    def _feed(self, samples: list[tuple[str, float, float, str]]) -> None:
        finished: list[Interval] = []
        with self._lock:
            for key, t, joules, method in samples:
                last = self._last_sample.get(key)
                if last is not None and t <= last[0]:
                    continue
                self.timeline.append(key, t, joules)
                self._last_sample[key] = (t, joules)
                own = self._own_thread_joules(key)
                finished.extend(self._accountant.feed(key, t, joules, method, own))
                self.samples_taken += 1

    def _own_thread_joules(self, key: str) -> dict[int, float] | None:
        """Per interval begun with its thread and open on ``key`` (a CPU-time device), the joules
        its thread drew since the last sample (under the lock; None for other devices)."""
        watts = self.devices[key].thread_watts
        if not watts:
            return None
        own = {}
        for interval in self._accountant.open_on(key):
            if interval.thread is None or interval.thread_cpu is None:
                continue
            now = _thread_cpu(interval.thread)
            if now is None:  # the thread is gone: nothing more of its own
                interval.thread_cpu = None
                continue
            own[interval.id] = (now - interval.thread_cpu) * watts
            interval.thread_cpu = now if interval.end is None else None  # after its end, no more of its own
        return own

    def _mark_lost(self, key: str, at: float, reason: str) -> None:
        with self._lock:
            if key in self._lost:
                return
            self._lost[key] = at
        device = self.devices[key]
        watts = f"{device.fallback_watts:g} W" if device.fallback_watts else "0 W (no rating known)"
        self._warn(
            f"auditor: {device.name} ({key}) stopped answering ({reason}); the search goes on and "
            f"its energy from now on is estimated at {watts}"
        )

    def _refresh_holders(self, now: float) -> None:
        """Find the GPUs this process tree holds a CUDA context on; add new ones to auto intervals."""
        holder_sources = [s for s in self.sources if hasattr(s, "holders")]
        if not holder_sources:
            return
        if self._tree is None:
            from auditor.meters.cpu import ProcessTree

            self._tree = ProcessTree(self._root_pid)
        pids = self._tree.pids()
        cpu_before = time.thread_time()
        listed = {key: holders for s in holder_sources for key, holders in s.holders().items()}
        cost = time.thread_time() - cpu_before
        self._holder_cost = cost if self._holder_cost == 0.0 else 0.8 * self._holder_cost + 0.2 * cost
        held = {key for key, holders in listed.items() if holders & pids}
        self._assumed -= held  # NVML has confirmed them since
        if not held and not self._held:
            held = self._assume_gpus(listed, pids)
        new = held - self._held
        if not new:
            return
        with self._lock:
            self._held |= new
            for interval in self._accountant.open_intervals():
                if interval.auto_gpus and interval.end is None:
                    for key in new:
                        self._accountant.add_device(interval, key, self.clock())

    def _assume_gpus(self, listed: dict[str, set[int]], pids: set[int]) -> set[str]:
        """The GPUs this process tree uses by its own account, where NVML lists none of its
        processes (a container's PID namespace): flagged ``devices-assumed``, said once."""
        elsewhere = other_namespace(listed)
        use = self._cuda_probe(pids, elsewhere)
        if not use.loaded or (use.devices is None and not elsewhere):
            return set()
        gpus = [d for d in self.devices.values() if d.is_gpu]
        keys = set(matching_keys(use, [d.key for d in gpus]))
        if keys and not self._assumed:
            why = "torch holds a CUDA context on them" if use.devices is not None else "the CUDA driver is loaded here"
            names = ", ".join(f"{d.index} ({d.name})" for d in gpus if d.key in keys)
            self._warn(
                f"auditor: NVML lists none of this process's PIDs on any GPU (it sees another PID "
                f"namespace: a container?); devices='auto' takes GPU {names}, as {why} "
                f"(flagged {ASSUMED_FLAG}). Pass devices=[...] to name them."
            )
        self._assumed |= keys
        return keys
