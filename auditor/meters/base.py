"""The one small interface every energy source implements.

A source owns some devices (GPUs, CPU packages, the process's CPU time...) and, when read,
returns each device's **cumulative** energy in joules since the source started. The sampler
reads each source on its own cadence into the timeline; the attribution turns the timeline
into the energy of each interval.

Methods, from most to least exact: ``counter`` (NVML energy counter), ``rapl`` (CPU/DRAM
counters), ``sampled-power`` (power readings integrated over time), ``estimate-tdp`` (CPU time
or wall time x rated power) and ``estimate`` (the documented memory estimate).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

METHOD_RANK = {"counter": 0, "rapl": 1, "sampled-power": 2, "estimate-tdp": 3, "estimate": 4}
MEASURED = frozenset({"counter", "rapl", "sampled-power"})


def worst_method(methods: set[str] | frozenset[str]) -> str:
    """The least exact of several methods (what a figure combining them can claim)."""
    return max(methods, key=lambda m: METHOD_RANK.get(m, len(METHOD_RANK))) if methods else "none"


@dataclass(frozen=True)
class EnergyReading:
    """Energy of one domain (gpu, cpu, memory) and how it was obtained.

    ``method`` is one of ``counter`` (NVML energy counter), ``sampled-power`` (integrated power
    readings), ``rapl`` (CPU/DRAM counters), ``estimate-tdp`` (time x rated power) or ``none``.
    """

    joules: float = 0.0
    method: str = "none"

    @property
    def is_measured(self) -> bool:
        """True when the figure comes from a hardware reading rather than an estimate."""
        return self.method in MEASURED


@dataclass(frozen=True)
class Device:
    """One metered device.

    Attributes:
        key: unique name in the process, e.g. ``gpu:GPU-5a1c...``, ``cpu:package-0``,
            ``cpu:process``, ``memory:process``.
        domain: ``gpu``, ``cpu`` or ``memory`` (the ledger's energy columns).
        name: the model or zone name, for records (``NVIDIA H100 80GB HBM3``).
        method: how its energy is obtained.
        update_period_s: how often the hardware updates the reading (0 for continuous).
        fallback_watts: the draw assumed if the device stops answering (its TDP), if known.
        index: the device index (GPUs), if any.
        flags: notes every figure of this device carries (``mig-slice-share``).
        thread_watts: for a device whose energy is CPU time x watts (the CPU-time estimate), the
            watts per CPU second: an interval begun with its thread is charged that thread's own
            CPU time first (:meth:`auditor.meters.attribution.Accountant.feed`).
    """

    key: str
    domain: str
    name: str
    method: str
    update_period_s: float = 0.0
    fallback_watts: float | None = None
    index: int | None = None
    flags: tuple[str, ...] = ()
    thread_watts: float | None = None  # the draw of one thread's CPU second, where a thread's own work is charged to it

    @property
    def is_gpu(self) -> bool:
        """True for GPUs (the devices a trial holds and GPU-hours count)."""
        return self.domain == "gpu"


class DeviceLostError(Exception):
    """A device stopped answering (a GPU fallen off the bus, a counter that became unreadable)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class EnergySource(ABC):
    """A source of cumulative energy readings for some devices.

    Subclasses set :attr:`poll_interval_s` (how often the sampler reads them, aligned with the
    hardware's update period) and :attr:`discrete` (True when the reading changes in steps, as
    the NVML counter does every 100 ms: the sampler then timestamps each change at the midpoint
    between the last read that saw the old value and the first that saw the new one), and
    :attr:`read_at_end` (True for sources cheap enough to read when an interval ends, which
    makes its energy in their domain final at once: what the budget tally needs).
    """

    poll_interval_s: float = 0.1
    discrete: bool = False
    read_at_end: bool = False  # cheap enough (well under 0.1 ms) to read when an interval ends

    @abstractmethod
    def devices(self) -> list[Device]:
        """The devices this source reads."""

    @abstractmethod
    def read(self) -> dict[str, float]:
        """Cumulative joules per device key. Devices that fail are left out and reported in
        :meth:`lost`, with the reason."""

    def lost(self) -> dict[str, str]:
        """Devices that stopped answering, with the reason (empty when all are well)."""
        return {}

    def close(self) -> None:  # noqa: B027 (a hook: most sources hold nothing)
        """Release what the source holds (NVML handles, files)."""
