"""A simulated NVML library: the pynvml functions the auditor calls, playing known power profiles.

Only the hardware is simulated: the auditor's NVML sources run unchanged against it.
"""

from __future__ import annotations

import math
import time
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
class FakeMig:
    """A MIG instance of a FakeGpu: its own UUID and processes, no counter of its own."""

    uuid: str
    slices: int
    name: str = "NVIDIA A100-SXM4-80GB MIG 3g.40gb"
    holders: set[int] = field(default_factory=set)


@dataclass
class FakeGpu:
    uuid: str
    name: str
    profile: PowerProfile
    has_counter: bool = True
    lost_after_s: float | None = None
    holders: set[int] = field(default_factory=set)
    migs: list[FakeMig] | None = None  # MIG enabled when set
    total_slices: int = 7


def spin(seconds: float) -> None:
    """Burn CPU for ``seconds``, as a costly driver call does."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class FakeNvml:
    """Stands where ``pynvml`` would: ``FakeNvml(gpus, clock).nvmlDeviceGet...``."""

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_GPUIsLost = NVMLError_GPUIsLost

    NVML_DEVICE_MIG_ENABLE = 1
    NVML_GPU_INSTANCE_PROFILE_7_SLICE = 0x4
    NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION = 83
    NVML_FI_DEV_POWER_INSTANT = 186

    def __init__(
        self,
        gpus: list[FakeGpu],
        clock: Callable[[], float],
        period_s: float = 0.1,
        counter_cost_s: float = 0.0,
        field_cost_s: float | None = None,
    ) -> None:
        """``counter_cost_s``: CPU a counter call burns; ``field_cost_s``: CPU a field read burns
        (None: the driver has no total-energy field)."""
        self.gpus = gpus
        self.clock = clock
        self.t0 = clock()
        self.period_s = period_s
        self.counter_cost_s = counter_cost_s
        self.field_cost_s = field_cost_s
        self.calls = 0
        self.counter_reads: dict[int, int] = {}
        self.spent_s = 0.0  # CPU seconds burnt in costly calls

    def _burn(self, seconds: float) -> None:
        if seconds:
            spin(seconds)
            self.spent_s += seconds

    def _gpu(self, handle: int) -> FakeGpu:
        self.calls += 1
        if isinstance(handle, tuple):
            raise NVMLError_NotSupported("Not Supported")  # a MIG instance has no counter
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

    def nvmlDeviceGetUUID(self, handle: int | tuple[int, int]) -> str:  # noqa: N802
        return self._mig(handle).uuid if isinstance(handle, tuple) else self.gpus[handle].uuid

    def nvmlDeviceGetName(self, handle: int | tuple[int, int]) -> str:  # noqa: N802
        return self._mig(handle).name if isinstance(handle, tuple) else self.gpus[handle].name

    def _counter_mj(self, handle: int) -> int:
        gpu = self._gpu(handle)
        if not gpu.has_counter:
            raise NVMLError_NotSupported("Not Supported")
        self.counter_reads[handle] = self.counter_reads.get(handle, 0) + 1
        elapsed = self.clock() - self.t0
        shown = math.floor(elapsed / self.period_s) * self.period_s
        return int(gpu.profile.energy(0.0, shown) * 1000)  # mJ, stepped every period

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:  # noqa: N802
        self._burn(self.counter_cost_s)
        return self._counter_mj(handle)

    def nvmlDeviceGetFieldValues(self, handle: int, field_ids: list[int]) -> list[SimpleNamespace]:  # noqa: N802
        values = []
        for field_id in field_ids:
            if self.field_cost_s is None or field_id != self.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION:
                values.append(SimpleNamespace(nvmlReturn=3, value=SimpleNamespace(ullVal=0)))  # NOT_SUPPORTED
                continue
            self._burn(self.field_cost_s)
            values.append(SimpleNamespace(nvmlReturn=0, value=SimpleNamespace(ullVal=self._counter_mj(handle))))
        return values

    # -- MIG: a handle (gpu index, slot) is an instance -------------------------------------

    def _mig(self, handle: tuple[int, int]) -> FakeMig:
        migs = self.gpus[handle[0]].migs or []
        if handle[1] >= len(migs):
            raise NVMLError("Not Found")
        return migs[handle[1]]

    def nvmlDeviceGetMigMode(self, handle: int) -> list[int]:  # noqa: N802
        return [int(self.gpus[handle].migs is not None), int(self.gpus[handle].migs is not None)]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: int) -> int:  # noqa: N802
        return 7 if self.gpus[handle].migs is not None else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: int, slot: int) -> tuple[int, int]:  # noqa: N802
        self._mig((handle, slot))
        return (handle, slot)

    def nvmlDeviceGetAttributes(self, handle: tuple[int, int]) -> SimpleNamespace:  # noqa: N802
        return SimpleNamespace(gpuInstanceSliceCount=self._mig(handle).slices)

    def nvmlDeviceGetGpuInstanceProfileInfo(self, handle: int, profile: int) -> SimpleNamespace:  # noqa: N802
        if profile != self.NVML_GPU_INSTANCE_PROFILE_7_SLICE:
            raise NVMLError_NotSupported("Not Supported")
        return SimpleNamespace(sliceCount=self.gpus[handle].total_slices)

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:  # noqa: N802
        gpu = self._gpu(handle)
        return int(gpu.profile.watts_at(self.clock() - self.t0) * 1000)  # mW

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int | tuple[int, int]) -> list[SimpleNamespace]:  # noqa: N802
        self._burn(self.counter_cost_s)  # as costly as the counter call, for want of a measurement
        holders = self._mig(handle).holders if isinstance(handle, tuple) else self._gpu(handle).holders
        return [SimpleNamespace(pid=pid, usedGpuMemory=0) for pid in holders]


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now
