"""The timeline: timestamped cumulative energy per device, in bounded memory.

Each device keeps its most recent samples in a fixed-size ring (65,536 samples by default:
about 27 minutes of NVML counter changes read every 25 ms, 1 MiB per device), so a week-long
search uses the same memory as a short one. Attribution does not need older samples: it
integrates each new sample into the open intervals as it arrives (see ``attribution``).

Example:
    >>> line = DeviceTimeline(capacity=4)
    >>> for t, joules in [(0.0, 0.0), (1.0, 100.0), (2.0, 300.0)]:
    ...     line.append(t, joules)
    >>> line.energy_between(0.5, 1.5)   # interpolated at both ends
    150.0
"""

from __future__ import annotations

import numpy as np

DEFAULT_CAPACITY = 65_536


class DeviceTimeline:
    """A ring of (time, cumulative joules) samples of one device, oldest overwritten first."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._times = np.zeros(capacity)
        self._joules = np.zeros(capacity)
        self._next = 0
        self._count = 0

    def append(self, t: float, joules: float) -> None:
        """Add a sample (times must increase)."""
        self._times[self._next] = t
        self._joules[self._next] = joules
        self._next = (self._next + 1) % len(self._times)
        self._count = min(self._count + 1, len(self._times))

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Memory held by the samples."""
        return self._times.nbytes + self._joules.nbytes

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        """Times and cumulative joules, oldest first."""
        if self._count < len(self._times):
            return self._times[: self._count].copy(), self._joules[: self._count].copy()
        order = np.r_[self._next : len(self._times), 0 : self._next]
        return self._times[order], self._joules[order]

    def energy_between(self, t0: float, t1: float) -> float:
        """Joules between ``t0`` and ``t1``, interpolated linearly at both ends (clamped to the
        span the ring still holds)."""
        times, joules = self.samples()
        if len(times) < 2 or t1 <= t0:
            return 0.0
        start, end = np.interp([t0, t1], times, joules)
        return float(end - start)


class Timeline:
    """The timelines of every device of a meter."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self.devices: dict[str, DeviceTimeline] = {}

    def append(self, key: str, t: float, joules: float) -> None:
        """Add a sample for device ``key``."""
        if key not in self.devices:
            self.devices[key] = DeviceTimeline(self.capacity)
        self.devices[key].append(t, joules)

    @property
    def nbytes(self) -> int:
        """Memory held by every device's samples."""
        return sum(line.nbytes for line in self.devices.values())
