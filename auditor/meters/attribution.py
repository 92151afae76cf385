"""Attribution: the energy of each interval, with nothing counted twice.

Every new sample of a device closes a span ``[previous sample, this sample]`` whose energy is
the counter's delta. Within the span power is taken as constant (linear interpolation of the
cumulative counter), and the span is cut at every interval start and end that falls inside it.
Each piece goes to the intervals open on the device during it, shared by their weights (equal
by default: two Optuna threads on one GPU get half each), or to ``idle`` when none is open.

So an interval shorter than the counter's update period still gets its proportional share
(never 0 J while the device draws power), and for every device::

    sum of the intervals' energy + idle == the counter's delta since the first sample

An interval's energy is final once every one of its devices has a sample at or after its end.

Example:
    >>> accountant = Accountant()
    >>> accountant.feed("gpu:0", 0.0, 0.0, "counter")
    []
    >>> a = accountant.open(Interval(start=0.0, devices={"gpu:0": 0.0}))
    >>> b = accountant.open(Interval(start=0.5, devices={"gpu:0": 0.5}))
    >>> accountant.close(a, 1.0) + accountant.close(b, 1.0)
    []
    >>> [iv is a for iv in accountant.feed("gpu:0", 1.0, 100.0, "counter")]
    [True, False]
    >>> a.energy["gpu:0"], b.energy["gpu:0"]   # 50 J alone, then 50 J shared
    (75.0, 25.0)
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
from dataclasses import dataclass, field

IDLE_HISTORY = 65_536  # idle pieces kept per device for intervals registered after the fact

_ids = itertools.count(1)


@dataclass(eq=False)
class Interval:
    """A span of time on a set of devices whose energy is wanted (a trial, a tracked block).

    Attributes:
        start: monotonic start time.
        devices: device key -> the time from which the interval holds it (its start, or later
            for a GPU found in use part-way).
        weight: its share of a device against other intervals open at the same time.
        auto_gpus: whether GPUs found in use later are added.
        end: monotonic end time, once ended.
        energy: joules per device so far.
        methods: per device, the methods of the samples that contributed.
    """

    start: float
    devices: dict[str, float]
    weight: float = 1.0
    auto_gpus: bool = False
    end: float | None = None
    energy: dict[str, float] = field(default_factory=dict)
    methods: dict[str, set[str]] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    pending: set[str] = field(default_factory=set)
    thread: int | None = None  # the thread running it, whose own CPU time is charged to it first
    thread_cpu: float | None = None  # that thread's CPU clock at the last sample of a thread-metered device
    thread_owed: float = 0.0  # its own joules not yet given (a span whose process delta was short of them)
    owed_after_end: bool = False  # past its end with joules owed: waits one more span, which pays them first
    id: int = field(default_factory=lambda: next(_ids))
    done: threading.Event = field(default_factory=threading.Event)

    def holds_from(self, key: str) -> float:
        """When the interval began holding device ``key``."""
        return self.devices[key]


@dataclass
class _DeviceState:
    frontier: float | None = None  # time of the last sample
    last: float = 0.0  # the reading at the frontier
    total: float = 0.0  # joules the readings rose since the first sample
    idle: float = 0.0
    open: list[Interval] = field(default_factory=list)
    idle_pieces: list[tuple[float, float, float]] = field(default_factory=list)  # (from, to, joules)

    def add_idle(self, x: float, y: float, joules: float) -> None:
        self.idle += joules
        self.idle_pieces.append((x, y, joules))
        if len(self.idle_pieces) > IDLE_HISTORY * 1.25:
            del self.idle_pieces[: len(self.idle_pieces) - IDLE_HISTORY]


class Accountant:
    """Splits each device's energy between the intervals open on it, and idle.

    Not thread-safe by itself: the meter calls it under its lock.
    """

    def __init__(self) -> None:
        self._devices: dict[str, _DeviceState] = {}

    def _state(self, key: str) -> _DeviceState:
        if key not in self._devices:
            self._devices[key] = _DeviceState()
        return self._devices[key]

    def open(self, interval: Interval) -> Interval:
        """Start attributing energy to ``interval`` on its devices."""
        for key in interval.devices:
            self._state(key).open.append(interval)
        return interval

    def add_device(self, interval: Interval, key: str, since: float) -> None:
        """Let ``interval`` hold device ``key`` from ``since`` on (a GPU found in use)."""
        if key in interval.devices:
            return
        interval.devices[key] = since
        state = self._state(key)
        state.open.append(interval)
        if interval.end is not None:
            interval.pending.add(key)

    def close(self, interval: Interval, end: float) -> list[Interval]:
        """End ``interval`` at ``end``; returns it if already final (every device sampled past it)."""
        interval.end = end
        interval.pending = {key for key in interval.devices if not self._past(key, end)}
        for key in set(interval.devices) - interval.pending:
            self._drop(key, interval)
        if not interval.pending:
            interval.done.set()
            return [interval]
        return []

    def _past(self, key: str, t: float) -> bool:
        frontier = self._state(key).frontier
        return frontier is not None and frontier >= t

    def _drop(self, key: str, interval: Interval) -> None:
        state = self._state(key)
        if interval in state.open:
            state.open.remove(interval)

    def feed(self, key: str, t: float, joules: float, method: str,
             own: dict[int, float] | None = None) -> list[Interval]:
        """Take a sample of device ``key``; returns the intervals that became final.

        ``own``: per interval id, the joules its own thread drew since the last sample (the
        CPU-time estimate with Optuna's ``n_jobs`` threads). Those go to it first; what is left
        of the delta (other threads: the sampler, a library's thread pool) is shared as usual.
        Own figures that add up to more than the delta are scaled down to it.
        """
        state = self._state(key)
        if state.frontier is None:
            state.frontier, state.last = t, joules
            return self._finish(key, state)
        if t <= state.frontier:
            return []
        a, b = state.frontier, t
        delta = max(0.0, joules - state.last)  # a counter reset gives no negative energy
        shared = delta - (self._give_own(key, state, own, delta, method) if own is not None and delta > 0 else 0.0)
        if shared > 0:
            self._split(key, state, a, b, shared, method)
        state.frontier, state.last, state.total = b, joules, state.total + delta
        return self._finish(key, state)

    @staticmethod
    def _give_own(key: str, state: _DeviceState, own: dict[int, float], delta: float, method: str) -> float:
        """Give each open interval its own thread's joules of this span (and what it is still owed);
        returns what was given. Where the process's delta is short of them (its clock and the
        threads' are read a moment apart), what is not given now is owed to the next span."""
        mine = {iv: max(0.0, own.get(iv.id, 0.0)) + iv.thread_owed for iv in state.open if iv.id in own or iv.thread_owed}
        total = math.fsum(mine.values())
        scale = min(1.0, delta / total) if total > 0 else 0.0
        for iv, joules in mine.items():
            iv.energy[key] = iv.energy.get(key, 0.0) + joules * scale
            iv.methods.setdefault(key, set()).add(method)
            iv.thread_owed = joules * (1.0 - scale)
        return min(delta, total * scale)

    def _split(self, key: str, state: _DeviceState, a: float, b: float, delta: float, method: str) -> None:
        live = [
            iv for iv in state.open
            if iv.holds_from(key) < b and (iv.end is None or iv.end > a)
        ]
        if not live:
            state.add_idle(a, b, delta)
            return
        cuts = {a, b}
        for iv in live:
            for edge in (iv.holds_from(key), iv.end):
                if edge is not None and a < edge < b:
                    cuts.add(edge)
        edges = sorted(cuts)
        given = 0.0
        for x, y in itertools.pairwise(edges):
            # the span's delta over its pieces, pro rata of time; the last piece takes the
            # remainder, so the pieces add up to the delta exactly
            piece = delta - given if y == b else delta * ((y - x) / (b - a))
            given += piece
            active = [iv for iv in live if iv.holds_from(key) <= x and (iv.end is None or iv.end >= y)]
            if not active:
                state.add_idle(x, y, piece)
                continue
            total_weight = math.fsum(iv.weight for iv in active)
            for iv in active:
                iv.energy[key] = iv.energy.get(key, 0.0) + piece * iv.weight / total_weight
                iv.methods.setdefault(key, set()).add(method)

    def _finish(self, key: str, state: _DeviceState) -> list[Interval]:
        finished = []
        for iv in list(state.open):
            if iv.end is not None and state.frontier is not None and state.frontier >= iv.end:
                if iv.thread_owed > 0 and not iv.owed_after_end:
                    # its thread's clock, read a moment after the process counter, ran ahead of it:
                    # the process counter shows that work in the next span, which pays it first
                    iv.owed_after_end = True
                    continue
                state.open.remove(iv)
                iv.pending.discard(key)
                if not iv.pending:
                    iv.done.set()
                    finished.append(iv)
        return finished

    def claim_idle(self, key: str, start: float, end: float,
                   taken: list[tuple[float, float]] | None = None) -> tuple[float, float]:
        """Move the idle energy of ``[start, end]`` to an interval known only after the fact
        (a trial that ran before the plugin saw its start). Energy already given to other
        intervals stays theirs, so nothing is counted twice.

        Returns the joules claimed and the earliest time the idle history still covers;
        ``taken`` (if given) receives each claimed piece's start and joules.
        """
        state = self._state(key)
        pieces = state.idle_pieces
        first = bisect.bisect_left(pieces, (start,)) - 1
        first = max(first, 0)
        claimed, kept = 0.0, []
        last = first
        for last in range(first, len(pieces)):
            x, y, joules = pieces[last]
            if x >= end:
                break
            lo, hi = max(x, start), min(y, end)
            if hi <= lo or y <= x:
                kept.append(pieces[last])
                continue
            claimed += joules * (hi - lo) / (y - x)
            if taken is not None:
                taken.append((lo, joules * (hi - lo) / (y - x)))  # when, and how much, for its owner
            if lo > x:
                kept.append((x, lo, joules * (lo - x) / (y - x)))
            if y > hi:
                kept.append((hi, y, joules * (y - hi) / (y - x)))
        else:
            last = len(pieces)
        pieces[first:last] = kept
        state.idle -= claimed
        covered_from = pieces[0][0] if pieces else (state.frontier or start)
        return claimed, covered_from

    def idle(self, key: str) -> float:
        """Joules of device ``key`` that no interval held."""
        return self._state(key).idle

    def counter_delta(self, key: str) -> float:
        """Joules the device's readings rose since its first sample."""
        return self._state(key).total

    def open_on(self, key: str) -> list[Interval]:
        """The intervals still taking samples of device ``key``."""
        return list(self._state(key).open)

    def open_intervals(self) -> set[Interval]:
        """Intervals still waiting for samples on some device."""
        return {iv for state in self._devices.values() for iv in state.open}
