"""A simulated GPU that plays a known power profile: the hardware boundary for tests.

It behaves like the NVML energy counter: cumulative energy that changes in steps every
``update_period_s`` (100 ms on an H100), exactly the integral of the profile up to the last
step. A device can be told to fail after some time, as a GPU lost mid-run does.

Example:
    >>> clock = iter([0.0, 0.25, 1.0]).__next__
    >>> gpu = SimulatedGpuSource([PowerProfile.constant(300.0)], clock=clock)
    >>> gpu.read(), gpu.read()   # at 0.25 s the counter still shows the 0.2 s step
    ({'gpu:SIM-0': 60.0}, {'gpu:SIM-0': 300.0})
"""

from __future__ import annotations

import bisect
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from auditor.meters.base import Device, EnergySource


@dataclass(frozen=True)
class PowerProfile:
    """Piecewise-constant power: ``steps`` of (seconds from start, watts), sorted by time."""

    steps: tuple[tuple[float, float], ...]

    @classmethod
    def constant(cls, watts: float) -> PowerProfile:
        """The same draw all along."""
        return cls(((0.0, watts),))

    @classmethod
    def of(cls, steps: Sequence[tuple[float, float]]) -> PowerProfile:
        """A profile from (start second, watts) pairs; the first should start at 0."""
        return cls(tuple(sorted((float(t), float(w)) for t, w in steps)))

    def watts_at(self, t: float) -> float:
        """The draw at ``t`` seconds from the start."""
        index = bisect.bisect_right([s for s, _ in self.steps], t) - 1
        return self.steps[max(index, 0)][1]

    def energy(self, t0: float, t1: float) -> float:
        """Exact joules drawn between ``t0`` and ``t1`` seconds from the start."""
        total = 0.0
        for i, (start, watts) in enumerate(self.steps):
            end = self.steps[i + 1][0] if i + 1 < len(self.steps) else math.inf
            overlap = min(end, t1) - max(start, t0)
            if overlap > 0:
                total += watts * overlap
        return total


class SimulatedGpuSource(EnergySource):
    """Simulated GPUs with energy counters, one per profile (keys ``gpu:SIM-0``, ...).

    Args:
        profiles: one power profile per GPU.
        update_period_s: how often the simulated counter changes (0 for continuously).
        clock: the time source; the profiles start at its first reading.
        fail_after_s: per GPU index, seconds after which it stops answering.
        held_by: pid reported as holding a CUDA context on every GPU (None: nobody).
    """

    discrete = True

    def __init__(
        self,
        profiles: Sequence[PowerProfile],
        *,
        update_period_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        fail_after_s: dict[int, float] | None = None,
        held_by: int | None = None,
        model: str = "Simulated GPU",
        tdp_watts: float = 700.0,
    ) -> None:
        self._profiles = list(profiles)
        self._period = update_period_s
        self._clock = clock
        self._t0 = clock()
        self._fail_after = fail_after_s or {}
        self._held_by = held_by
        self._lost: dict[str, str] = {}
        self.poll_interval_s = update_period_s / 2 if update_period_s > 0 else 0.05
        self.discrete = update_period_s > 0
        self._devices = [
            Device(f"gpu:SIM-{i}", "gpu", model, "counter", update_period_s, tdp_watts, index=i)
            for i in range(len(self._profiles))
        ]

    @classmethod
    def from_spec(cls, spec: str, **kwargs: object) -> SimulatedGpuSource:
        """GPUs from a spec such as ``"2x300"`` (two GPUs drawing 300 W each)."""
        count, _, watts = spec.lower().partition("x")
        return cls([PowerProfile.constant(float(watts))] * int(count), **kwargs)  # type: ignore[arg-type]

    @property
    def t0(self) -> float:
        """The clock's reading the profiles start from."""
        return self._t0

    def devices(self) -> list[Device]:
        return list(self._devices)

    def lost(self) -> dict[str, str]:
        return dict(self._lost)

    def holders(self) -> dict[str, set[int]]:
        """Per GPU, the pids holding a context: ``held_by`` on every GPU still answering."""
        pids = {self._held_by} if self._held_by is not None else set()
        return {d.key: set(pids) for d in self._devices if d.key not in self._lost}

    def read(self) -> dict[str, float]:
        elapsed = self._clock() - self._t0
        shown = math.floor(elapsed / self._period) * self._period if self._period > 0 else elapsed
        values = {}
        for device, profile in zip(self._devices, self._profiles, strict=True):
            fail_at = self._fail_after.get(device.index)  # type: ignore[arg-type]
            if device.key in self._lost or (fail_at is not None and elapsed >= fail_at):
                self._lost.setdefault(device.key, "simulated: GPU is lost")
                continue
            values[device.key] = profile.energy(0.0, shown)
        return values


def simulated_gpus_from_environment() -> SimulatedGpuSource | None:
    """Simulated GPUs named by ``AUDITOR_SIMULATE_GPUS`` (e.g. ``2x300``), for test workers."""
    spec = os.environ.get("AUDITOR_SIMULATE_GPUS")
    return SimulatedGpuSource.from_spec(spec, held_by=os.getpid()) if spec else None


class SimulatedRaplSource(EnergySource):
    """A simulated CPU package with a RAPL counter (key ``cpu:SIM-package-0``): continuous, exact
    to the profile, and cheap to read, so that the meter reads it at every interval's start and
    end as it reads the real RAPL and the CPU-time estimate.

    Example:
        >>> clock = iter([0.0, 0.5, 2.0]).__next__
        >>> cpu = SimulatedRaplSource(PowerProfile.of([(0, 10.0), (1, 30.0)]), clock=clock)
        >>> cpu.read(), cpu.read()
        ({'cpu:SIM-package-0': 5.0}, {'cpu:SIM-package-0': 40.0})
    """

    poll_interval_s = 0.5
    read_at_end = True

    def __init__(self, profile: PowerProfile, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.profile = profile
        self._clock = clock
        self.t0 = clock()

    def devices(self) -> list[Device]:
        return [Device("cpu:SIM-package-0", "cpu", "Simulated CPU package", "rapl")]

    def read(self) -> dict[str, float]:
        return {"cpu:SIM-package-0": self.profile.energy(0.0, self._clock() - self.t0)}
