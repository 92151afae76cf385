"""A simulated NVML library: the pynvml functions the auditor calls, playing known power profiles.

Only the hardware is simulated: the auditor's NVML sources run unchanged against it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

from auditor.meters.simulated import PowerProfile


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):  # noqa: N801 - pynvml's names
    pass


class NVMLError_GPUIsLost(NVMLError):  # noqa: N801
    pass


@dataclass
class FakeGpu:
    uuid: str
    name: str
    profile: PowerProfile
    has_counter: bool = True
    lost_after_s: float | None = None
    holders: set[int] = field(default_factory=set)


class FakeNvml:
    """Stands where ``pynvml`` would: ``FakeNvml(gpus, clock).nvmlDeviceGet...``."""

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_GPUIsLost = NVMLError_GPUIsLost

    def __init__(self, gpus: list[FakeGpu], clock: Callable[[], float], period_s: float = 0.1) -> None:
        self.gpus = gpus
        self.clock = clock
        self.t0 = clock()
        self.period_s = period_s
        self.calls = 0

    def _gpu(self, handle: int) -> FakeGpu:
        self.calls += 1
        gpu = self.gpus[handle]
        if gpu.lost_after_s is not None and self.clock() - self.t0 >= gpu.lost_after_s:
            raise NVMLError_GPUIsLost("GPU is lost")
        return gpu

    def nvmlInit(self) -> None:  # noqa: N802
        pass

    def nvmlShutdown(self) -> None:  # noqa: N802
        pass

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:  # noqa: N802
        return index

    def nvmlDeviceGetUUID(self, handle: int) -> str:  # noqa: N802
        return self.gpus[handle].uuid

    def nvmlDeviceGetName(self, handle: int) -> str:  # noqa: N802
        return self.gpus[handle].name

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:  # noqa: N802
        gpu = self._gpu(handle)
        if not gpu.has_counter:
            raise NVMLError_NotSupported("Not Supported")
        elapsed = self.clock() - self.t0
        shown = math.floor(elapsed / self.period_s) * self.period_s
        return int(gpu.profile.energy(0.0, shown) * 1000)  # mJ, stepped every period

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:  # noqa: N802
        gpu = self._gpu(handle)
        return int(gpu.profile.watts_at(self.clock() - self.t0) * 1000)  # mW

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:  # noqa: N802
        return [SimpleNamespace(pid=pid, usedGpuMemory=0) for pid in self._gpu(handle).holders]


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now
