"""The CPU: its model, its rated power (TDP) from the hardware table, and the power per thread.

CPU energy without RAPL is estimated as CPU time x watts per logical CPU, where the watts are
the CPU's TDP over its logical CPUs per socket. For a CPU the table does not hold,
:data:`DEFAULT_WATTS_PER_LOGICAL_CPU` is used: 4 W, about the median of the server CPUs in the
table (e.g. Xeon Gold 6148: 150 W / 40 threads = 3.75 W). Such figures are flagged as estimates.

Example:
    >>> info = probe_cpu(cpuinfo="model name\\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz\\nsiblings\\t: 40\\n")
    >>> info.tdp.tdp_watts, info.watts_per_logical_cpu
    (150.0, 3.75)
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from auditor.meters.base import Device, EnergySource
from auditor.model.hardware import HardwareSpec, identify_hardware

DEFAULT_WATTS_PER_LOGICAL_CPU = 4.0


@dataclass(frozen=True)
class CpuInfo:
    """The CPU model, logical CPUs per socket, and the TDP found for it (None if unknown)."""

    model: str
    logical_cpus_per_socket: int
    tdp: HardwareSpec | None

    @property
    def watts_per_logical_cpu(self) -> float:
        """Rated power of one logical CPU (hardware thread), for CPU-time estimates."""
        if self.tdp is None:
            return DEFAULT_WATTS_PER_LOGICAL_CPU
        return self.tdp.tdp_watts / max(1, self.logical_cpus_per_socket)


def _field(cpuinfo: str, key: str) -> str | None:
    for line in cpuinfo.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() == key:
            return value.strip()
    return None


def probe_cpu(cpuinfo: str | None = None) -> CpuInfo:
    """Read the CPU model from ``/proc/cpuinfo`` (or the text given) and look up its TDP."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    model = _field(cpuinfo, "model name") or platform.processor() or "unknown CPU"
    siblings = _field(cpuinfo, "siblings")
    per_socket = int(siblings) if siblings and siblings.isdigit() else (os.cpu_count() or 1)
    return CpuInfo(model=model, logical_cpus_per_socket=per_socket, tdp=identify_hardware(model, kind="cpu"))


# Memory draw per GB resident, for the memory estimate: 3 W per 8 GB of DDR4 (the figure
# CodeCarbon uses, from Micron's power calculator), i.e. 0.375 W/GB.
MEMORY_WATTS_PER_GB = 0.375


class Processes(Protocol):
    """What the CPU-time and memory estimates read: a set of processes' CPU seconds and resident
    memory (:class:`ProcessTree`, or a Ray session's processes outside trials)."""

    def cpu_seconds(self) -> float: ...

    def rss_bytes(self) -> int: ...


class ProcessTree:
    """CPU seconds and resident memory of a process and all its descendants.

    CPU time of descendants that have exited is kept (their last reading), so the cumulative
    figure never goes down. Finding descendants scans every process of the machine (about
    1.5 ms), so the list is refreshed at most every ``refresh_s`` seconds; reading the known
    members costs microseconds.
    """

    def __init__(self, pid: int | None = None, refresh_s: float = 2.0) -> None:
        import psutil

        self._psutil = psutil
        self._clock = time.monotonic
        self.pid = pid if pid is not None else os.getpid()
        self._root = psutil.Process(self.pid)
        self._refresh_s = refresh_s
        self._cached: list[Any] = []
        self._cached_at = -float("inf")
        self._cpu_seen: dict[tuple[int, float], float] = {}
        self._cpu_floor = 0.0

    def _members(self) -> list[Any]:
        now = self._clock()
        if now - self._cached_at >= self._refresh_s:
            try:
                self._cached = [self._root, *self._root.children(recursive=True)]
            except self._psutil.Error:
                self._cached = []
            self._cached_at = now
        return self._cached

    def pids(self) -> set[int]:
        """The pids of the tree's live members (new descendants show within ``refresh_s``)."""
        return {p.pid for p in self._members() if self._alive(p)}

    def _alive(self, process: Any) -> bool:
        try:
            return process.is_running() and process.status() != self._psutil.STATUS_ZOMBIE
        except self._psutil.Error:
            return False

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of every process the tree has held.

        This process's own time comes from ``time.process_time`` (nanosecond resolution) rather
        than from /proc (10 ms ticks), so short trials in this process get their share.
        """
        own = os.getpid()
        for process in self._members():
            if process.pid == own:
                self._cpu_seen[(own, 0.0)] = time.process_time()
                continue
            try:
                times = process.cpu_times()
                key = (process.pid, process.create_time())
            except self._psutil.Error:
                continue
            self._cpu_seen[key] = times.user + times.system
        return max(sum(self._cpu_seen.values()), self._cpu_floor)

    def finish(self, cpu_seconds: float) -> None:
        """The tree's total CPU seconds once its root was reaped (``os.wait4``'s rusage, which
        includes every descendant it waited for)."""
        self._cpu_floor = max(self._cpu_floor, cpu_seconds)

    def rss_bytes(self) -> int:
        """Resident memory of the tree now."""
        total = 0
        for process in self._members():
            try:
                total += process.memory_info().rss
            except self._psutil.Error:
                continue
        return total


class CpuTimeSource(EnergySource):
    """CPU energy estimated as the process tree's CPU seconds x watts per logical CPU.

    Used where RAPL cannot be read. Flagged ``estimate-tdp``. See :class:`CpuInfo` for the
    watts and their default.
    """

    poll_interval_s = 0.5
    read_at_end = True

    def __init__(self, tree: Processes | None = None, cpu: CpuInfo | None = None) -> None:
        self._tree = tree or ProcessTree()
        self._cpu = cpu or probe_cpu()
        self._start = self._tree.cpu_seconds()

    def devices(self) -> list[Device]:
        return [Device("cpu:process", "cpu", self._cpu.model, "estimate-tdp", fallback_watts=None,
                       thread_watts=self._cpu.watts_per_logical_cpu)]

    def read(self) -> dict[str, float]:
        return {"cpu:process": (self._tree.cpu_seconds() - self._start) * self._cpu.watts_per_logical_cpu}


class MemoryEstimateSource(EnergySource):
    """Memory energy estimated as the process tree's resident memory x 0.375 W/GB over time.

    Flagged ``estimate``. Used where RAPL's DRAM zone cannot be read.
    """

    poll_interval_s = 0.5
    read_at_end = True

    rss_refresh_s = 0.05  # resident memory is read at most this often (an interval's end reads the clock only)

    def __init__(self, tree: Processes | None = None, clock: Any = None) -> None:
        self._tree = tree or ProcessTree()
        self._clock = clock or time.monotonic
        self._last: tuple[float, float] | None = None
        self._rss_read_at = -math.inf
        self._joules = 0.0

    def devices(self) -> list[Device]:
        return [Device("memory:process", "memory", "resident memory", "estimate")]

    def read(self) -> dict[str, float]:
        now = self._clock()
        if self._last is not None and now - self._rss_read_at < self.rss_refresh_s:
            watts = self._last[1]  # many trial ends a second: the draw of a moment ago
        else:
            watts, self._rss_read_at = self._tree.rss_bytes() / 1e9 * MEMORY_WATTS_PER_GB, now
        if self._last is not None:
            then, previous = self._last
            self._joules += (previous + watts) / 2 * (now - then)
        self._last = (now, watts)
        return {"memory:process": self._joules}
