"""NVIDIA GPUs through NVML (nvidia-ml-py): which GPUs this process sees, and their counters.

A visible GPU is a whole GPU, or a MIG instance (``CUDA_VISIBLE_DEVICES=MIG-...``) that is
charged its share of its parent's counter (:mod:`auditor.meters.mig`). The counter is read
through whichever of NVML's two calls that give it is cheaper on this GPU, timed when the
source starts (:func:`counter_call`).

Example:
    >>> visible_indices("1,0", ["GPU-a", "GPU-b", "GPU-c"])
    [1, 0]
    >>> visible_indices("GPU-c", ["GPU-a", "GPU-b", "GPU-c"])
    [2]
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from auditor.meters.base import Device, EnergySource
from auditor.meters.cuda import other_namespace
from auditor.meters.mig import MIG_FLAG, MigInstance, mig_instances
from auditor.model.hardware import identify_hardware

# Assumed draw of a GPU whose model is not in the hardware table, should it stop answering.
DEFAULT_GPU_WATTS = 300.0
NVML_SUCCESS = 0
TIMED_CALLS = 5  # calls of each counter call timed when a source starts


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as NVML reports it (a MIG instance has its parent's counter and a share)."""

    index: int
    uuid: str
    name: str
    has_energy_counter: bool
    mig_share: float | None = None
    counter_call: str | None = None
    counter_call_ms: float | None = None


@dataclass(frozen=True)
class NvmlStatus:
    """What NVML offers here: the visible GPUs, or why there are none."""

    available: bool
    gpus: list[GpuInfo] = field(default_factory=list)
    driver: str | None = None
    nvml_version: str | None = None
    reason: str | None = None
    hint: str | None = None
    cuda_visible_devices: str | None = None
    other_pid_namespace: bool = False


@dataclass(frozen=True)
class VisibleGpu:
    """A GPU this process may use, as the sources read it.

    Attributes:
        uuid: ``GPU-...``, or ``MIG-...`` for a MIG instance.
        index: NVML index of the physical GPU.
        name: the model (or the MIG profile) as NVML names it.
        handle: its own NVML handle (lists the processes on it).
        counter: the handle whose energy is read (the parent GPU for a MIG instance).
        share: its share of that counter (1 for a whole GPU).
    """

    uuid: str
    index: int
    name: str
    handle: Any
    counter: Any
    share: float = 1.0

    @property
    def key(self) -> str:
        """The device key of the records."""
        return f"gpu:{self.uuid}"

    @property
    def flags(self) -> tuple[str, ...]:
        """Notes every figure of this GPU carries."""
        return (MIG_FLAG,) if self.share < 1.0 else ()


def visible_indices(cuda_visible_devices: str | None, uuids: list[str]) -> list[int]:
    """NVML indices of the GPUs a CUDA program sees, in CUDA's order.

    ``CUDA_VISIBLE_DEVICES`` holds indices or (prefixes of) UUIDs; CUDA stops at the first
    entry it cannot resolve, and so does this. Unset means every GPU; empty means none.
    """
    if cuda_visible_devices is None:
        return list(range(len(uuids)))
    indices: list[int] = []
    for entry in (e.strip() for e in cuda_visible_devices.split(",")):
        index = _resolve(entry, uuids)
        if index is None or index in indices:
            break
        indices.append(index)
    return indices


def _resolve(entry: str, uuids: list[str]) -> int | None:
    if entry.isdigit():
        return int(entry) if int(entry) < len(uuids) else None
    matches = [i for i, uuid in enumerate(uuids) if entry and uuid.startswith(entry)]
    return matches[0] if len(matches) == 1 else None


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def visible_gpus(nvml: Any, cuda_visible_devices: str | None) -> list[VisibleGpu]:
    """The GPUs and MIG instances a CUDA program sees with ``cuda_visible_devices``, in
    CUDA's order (None: every whole GPU)."""
    handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
    uuids = [_text(nvml.nvmlDeviceGetUUID(h)) for h in handles]

    def whole(index: int) -> VisibleGpu:
        return VisibleGpu(uuids[index], index, _text(nvml.nvmlDeviceGetName(handles[index])), handles[index], handles[index])

    if cuda_visible_devices is None:
        return [whole(i) for i in range(len(handles))]
    instances: list[MigInstance] | None = None
    gpus: list[VisibleGpu] = []
    for entry in (e.strip() for e in cuda_visible_devices.split(",")):
        if entry.startswith("MIG-"):
            instances = mig_instances(nvml, handles) if instances is None else instances
            found = [m for m in instances if m.uuid.startswith(entry)]
            if len(found) != 1:
                break
            mig = found[0]
            gpu = VisibleGpu(mig.uuid, mig.parent_index, mig.name, mig.handle, mig.parent, mig.share)
        else:
            index = _resolve(entry, uuids)
            if index is None:
                break
            gpu = whole(index)
        if any(g.uuid == gpu.uuid for g in gpus):
            break
        gpus.append(gpu)
    return gpus


def _has_counter(nvml: Any, handle: Any) -> bool:
    try:
        nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        return True
    except nvml.NVMLError:
        return False


def _gpu_info(nvml: Any, gpu: VisibleGpu) -> GpuInfo:
    share = gpu.share if gpu.share < 1.0 else None
    if not _has_counter(nvml, gpu.counter):
        return GpuInfo(gpu.index, gpu.uuid, gpu.name, False, share)
    call = counter_call(nvml, gpu.counter)
    return GpuInfo(gpu.index, gpu.uuid, gpu.name, True, share, call.name, call.seconds * 1000)


def _processes(nvml: Any, gpus: list[VisibleGpu]) -> dict[str, set[int]]:
    listed: dict[str, set[int]] = {}
    for gpu in gpus:
        try:
            listed[gpu.key] = {p.pid for p in nvml.nvmlDeviceGetComputeRunningProcesses(gpu.handle)}
        except nvml.NVMLError:
            continue
    return listed


def probe_nvml() -> NvmlStatus:
    """Initialise NVML and list the GPUs this process may use, with their energy counters."""
    cuda_visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        import pynvml
    except ImportError:
        return NvmlStatus(False, reason="nvidia-ml-py is not installed", hint="pip install nvidia-ml-py")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        return NvmlStatus(
            False,
            reason="no NVIDIA driver here (libnvidia-ml.so not found)",
            hint="GPU energy is measured on machines with an NVIDIA GPU and its driver",
        )
    except pynvml.NVMLError as exc:
        return NvmlStatus(False, reason=f"NVML failed to start: {exc}", hint="check the driver with nvidia-smi")
    try:
        visible = visible_gpus(pynvml, cuda_visible)
        gpus = [_gpu_info(pynvml, g) for g in visible]
        return NvmlStatus(
            True,
            gpus=gpus,
            driver=_text(pynvml.nvmlSystemGetDriverVersion()),
            nvml_version=_text(pynvml.nvmlSystemGetNVMLVersion()),
            cuda_visible_devices=cuda_visible,
            reason=None if gpus else "NVML sees no GPU that CUDA_VISIBLE_DEVICES leaves visible",
            other_pid_namespace=other_namespace(_processes(pynvml, visible)),
        )
    except pynvml.NVMLError as exc:
        return NvmlStatus(False, reason=f"NVML error while listing GPUs: {exc}", hint="check the driver with nvidia-smi")
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


# -- the counter, through its cheaper call -----------------------------------------------------

NVML_COUNTER_PERIOD_S = 0.1  # measured on H100 (driver 580): the counter changes every 100 ms


@dataclass(frozen=True)
class CounterCall:
    """How a GPU's energy counter is read: the call's name, its cost and the reader (mJ)."""

    name: str
    seconds: float
    read_mj: Callable[[Any], float]


def counter_call(nvml: Any, handle: Any) -> CounterCall:
    """The cheaper of NVML's two calls that give the energy counter, timed on ``handle``.

    ``nvmlDeviceGetTotalEnergyConsumption`` took 3.4-4.4 ms a call on an H100 VM, where a field
    read (``nvmlDeviceGetFieldValues``) of another value took 23 us; the field
    ``NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION`` gives the same counter. Whichever is cheaper here
    is used; a field that does not answer is never chosen.
    """
    field_id = getattr(nvml, "NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION", 83)

    def by_function(h: Any) -> float:
        return float(nvml.nvmlDeviceGetTotalEnergyConsumption(h))

    def by_field(h: Any) -> float:
        value = nvml.nvmlDeviceGetFieldValues(h, [field_id])[0]
        if value.nvmlReturn != NVML_SUCCESS:
            raise nvml.NVMLError(value.nvmlReturn)
        return float(value.value.ullVal)

    candidates = [CounterCall("nvmlDeviceGetTotalEnergyConsumption", _cost(by_function, handle), by_function)]
    try:
        candidates.append(CounterCall("nvmlDeviceGetFieldValues(TOTAL_ENERGY_CONSUMPTION)", _cost(by_field, handle), by_field))
    except Exception:  # noqa: BLE001 - an older driver without the field: the function it is
        pass
    return min(candidates, key=lambda c: c.seconds)


def _cost(call: Callable[[Any], float], handle: Any) -> float:
    times = []
    for _ in range(TIMED_CALLS):
        start = time.perf_counter()
        call(handle)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# -- energy sources -------------------------------------------------------------------------


def load_nvml() -> Any:
    """The NVML bindings, initialised; raises ImportError or NVMLError when unavailable."""
    import pynvml

    pynvml.nvmlInit()
    return pynvml


class _NvmlSource(EnergySource):
    """What both NVML sources share: the visible GPUs, each physical GPU read once per read,
    shares for MIG instances, and what to do when one is lost."""

    method = "counter"

    def __init__(self, nvml: Any, gpus: list[VisibleGpu] | list[int] | None = None) -> None:
        self._nvml = nvml
        if gpus is None:
            gpus = visible_gpus(nvml, os.environ.get("CUDA_VISIBLE_DEVICES"))
        elif gpus and isinstance(gpus[0], int):
            every = visible_gpus(nvml, None)
            gpus = [every[i] for i in gpus]
        self._gpus: list[VisibleGpu] = list(gpus)  # type: ignore[arg-type]
        self._devices = []
        for gpu in self._gpus:
            spec = identify_hardware(gpu.name, kind="gpu")
            watts = spec.tdp_watts if spec else DEFAULT_GPU_WATTS
            self._devices.append(
                Device(
                    key=gpu.key,
                    domain="gpu",
                    name=gpu.name,
                    method=self.method,
                    update_period_s=NVML_COUNTER_PERIOD_S,
                    fallback_watts=watts * gpu.share,
                    index=gpu.index,
                    flags=gpu.flags,
                )
            )
        self._lost: dict[str, str] = {}

    def devices(self) -> list[Device]:
        return list(self._devices)

    def lost(self) -> dict[str, str]:
        return dict(self._lost)

    def holders(self) -> dict[str, set[int]]:
        """Per GPU, the pids holding a CUDA compute context on it."""
        held: dict[str, set[int]] = {}
        for gpu in self._gpus:
            if gpu.key in self._lost:
                continue
            try:
                processes = self._nvml.nvmlDeviceGetComputeRunningProcesses(gpu.handle)
            except self._nvml.NVMLError:
                continue
            held[gpu.key] = {p.pid for p in processes}
        return held

    def _read_physical(self, gpu: VisibleGpu) -> float:
        """Joules of the physical GPU behind ``gpu``, as this source measures them."""
        raise NotImplementedError

    def read(self) -> dict[str, float]:
        values: dict[str, float] = {}
        physical: dict[int, float | str] = {}  # NVML index -> joules, or the error
        for gpu in self._gpus:
            if gpu.key in self._lost:
                continue
            if gpu.index not in physical:
                try:
                    physical[gpu.index] = self._read_physical(gpu)
                except self._nvml.NVMLError as exc:
                    physical[gpu.index] = f"NVML error: {exc}"
            joules = physical[gpu.index]
            if isinstance(joules, str):
                self._lost[gpu.key] = joules
            else:
                values[gpu.key] = joules * gpu.share
        return values


class NvmlCounterSource(_NvmlSource):
    """GPUs with an energy counter (Volta and newer): the counter in mJ since the driver loaded.

    The counter is the truth to build on; it changes every 100 ms, so it is read every 50 ms
    (less often where reads are costly: the sampler keeps its reads under 1 % of a core) and
    each change is timestamped midway between the two reads around it.
    """

    method = "counter"
    poll_interval_s = NVML_COUNTER_PERIOD_S / 2
    discrete = True

    def __init__(self, nvml: Any, gpus: list[VisibleGpu] | list[int] | None = None) -> None:
        super().__init__(nvml, gpus)
        by_model: dict[str, CounterCall] = {}  # timed once per model: GPUs alike cost alike
        self.calls: dict[int, CounterCall] = {}
        for gpu in self._gpus:
            model = _text(nvml.nvmlDeviceGetName(gpu.counter))
            if model not in by_model:
                by_model[model] = counter_call(nvml, gpu.counter)
            self.calls[gpu.index] = by_model[model]

    def _read_physical(self, gpu: VisibleGpu) -> float:
        return self.calls[gpu.index].read_mj(gpu.counter) / 1000.0


class NvmlPowerSource(_NvmlSource):
    """GPUs without an energy counter: ``nvmlDeviceGetPowerUsage`` integrated over time.

    Flagged ``sampled-power``: on recent GPUs that reading is a lagging one-second average, so it
    is used only where no counter exists.
    """

    method = "sampled-power"
    poll_interval_s = 0.1

    def __init__(self, nvml: Any, gpus: list[VisibleGpu] | list[int] | None = None, clock: Any = None) -> None:
        super().__init__(nvml, gpus)
        self._clock = clock or time.monotonic
        self._last: dict[int, tuple[float, float]] = {}  # NVML index -> (time, watts)
        self._joules: dict[int, float] = {}

    def _read_physical(self, gpu: VisibleGpu) -> float:
        now = self._clock()
        watts = self._nvml.nvmlDeviceGetPowerUsage(gpu.counter) / 1000.0
        if gpu.index in self._last:
            then, previous = self._last[gpu.index]
            self._joules[gpu.index] = self._joules.get(gpu.index, 0.0) + (previous + watts) / 2 * (now - then)
        self._last[gpu.index] = (now, watts)
        return self._joules.setdefault(gpu.index, 0.0)


def nvml_sources(nvml: Any = None, respect_cuda_visible_devices: bool = True) -> tuple[list[EnergySource], str | None]:
    """NVML sources for the visible GPUs: counters where they exist, power sampling elsewhere.

    With ``respect_cuda_visible_devices=False``, every GPU of the machine (a node-wide meter).
    Returns the sources and, when NVML cannot be used, the reason (the search goes on without
    GPU energy).
    """
    if nvml is None:
        try:
            nvml = load_nvml()
        except ImportError:
            return [], "nvidia-ml-py is not installed"
        except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, driver errors...
            return [], f"NVML unavailable: {exc}"
    try:
        visible = visible_gpus(nvml, os.environ.get("CUDA_VISIBLE_DEVICES") if respect_cuda_visible_devices else None)
        with_counter = [g for g in visible if _has_counter(nvml, g.counter)]
        without = [g for g in visible if g not in with_counter]
        sources: list[EnergySource] = []
        if with_counter:
            sources.append(NvmlCounterSource(nvml, with_counter))
        if without:
            sources.append(NvmlPowerSource(nvml, without))
        return sources, None
    except nvml.NVMLError as exc:
        return [], f"NVML error while listing GPUs: {exc}"
