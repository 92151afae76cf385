"""NVIDIA GPUs through NVML (nvidia-ml-py): which GPUs this process sees, and their counters.

Example:
    >>> visible_indices("1,0", ["GPU-a", "GPU-b", "GPU-c"])
    [1, 0]
    >>> visible_indices("GPU-c", ["GPU-a", "GPU-b", "GPU-c"])
    [2]
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from auditor.meters.base import Device, EnergySource
from auditor.model.hardware import identify_hardware

# Assumed draw of a GPU whose model is not in the hardware table, should it stop answering.
DEFAULT_GPU_WATTS = 300.0


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as NVML reports it."""

    index: int
    uuid: str
    name: str
    has_energy_counter: bool


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


def visible_indices(cuda_visible_devices: str | None, uuids: list[str]) -> list[int]:
    """NVML indices of the GPUs a CUDA program sees, in CUDA's order.

    ``CUDA_VISIBLE_DEVICES`` holds indices or (prefixes of) UUIDs; CUDA stops at the first
    entry it cannot resolve, and so does this. Unset means every GPU; empty means none.
    """
    if cuda_visible_devices is None:
        return list(range(len(uuids)))
    indices: list[int] = []
    for entry in (e.strip() for e in cuda_visible_devices.split(",")):
        if entry.isdigit():
            index = int(entry)
            if index >= len(uuids):
                break
        else:
            matches = [i for i, uuid in enumerate(uuids) if entry and uuid.startswith(entry)]
            if len(matches) != 1:
                break
            index = matches[0]
        if index in indices:
            break
        indices.append(index)
    return indices


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


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
        count = pynvml.nvmlDeviceGetCount()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        uuids = [_text(pynvml.nvmlDeviceGetUUID(h)) for h in handles]
        gpus = []
        for index in visible_indices(cuda_visible, uuids):
            handle = handles[index]
            try:
                pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
                has_counter = True
            except pynvml.NVMLError:
                has_counter = False
            gpus.append(GpuInfo(index, uuids[index], _text(pynvml.nvmlDeviceGetName(handle)), has_counter))
        return NvmlStatus(
            True,
            gpus=gpus,
            driver=_text(pynvml.nvmlSystemGetDriverVersion()),
            nvml_version=_text(pynvml.nvmlSystemGetNVMLVersion()),
            cuda_visible_devices=cuda_visible,
            reason=None if gpus else "NVML sees no GPU that CUDA_VISIBLE_DEVICES leaves visible",
        )
    except pynvml.NVMLError as exc:
        return NvmlStatus(False, reason=f"NVML error while listing GPUs: {exc}", hint="check the driver with nvidia-smi")
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


# -- energy sources -------------------------------------------------------------------------

NVML_COUNTER_PERIOD_S = 0.1  # measured on H100 (driver 580): the counter changes every 100 ms


def load_nvml() -> Any:
    """The NVML bindings, initialised; raises ImportError or NVMLError when unavailable."""
    import pynvml

    pynvml.nvmlInit()
    return pynvml


class _NvmlSource(EnergySource):
    """What both NVML sources share: the visible GPUs and what to do when one is lost."""

    method = "counter"

    def __init__(self, nvml: Any, indices: list[int] | None = None) -> None:
        self._nvml = nvml
        count = nvml.nvmlDeviceGetCount()
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        uuids = [_text(nvml.nvmlDeviceGetUUID(h)) for h in handles]
        if indices is None:
            indices = visible_indices(os.environ.get("CUDA_VISIBLE_DEVICES"), uuids)
        self._handles = {f"gpu:{uuids[i]}": handles[i] for i in indices}
        self._devices = []
        for i in indices:
            name = _text(nvml.nvmlDeviceGetName(handles[i]))
            spec = identify_hardware(name, kind="gpu")
            self._devices.append(
                Device(
                    key=f"gpu:{uuids[i]}",
                    domain="gpu",
                    name=name,
                    method=self.method,
                    update_period_s=NVML_COUNTER_PERIOD_S,
                    fallback_watts=spec.tdp_watts if spec else DEFAULT_GPU_WATTS,
                    index=i,
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
        for key, handle in self._handles.items():
            if key in self._lost:
                continue
            try:
                processes = self._nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            except self._nvml.NVMLError:
                continue
            held[key] = {p.pid for p in processes}
        return held

    def _read_device(self, handle: Any) -> float:
        raise NotImplementedError

    def read(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for key, handle in self._handles.items():
            if key in self._lost:
                continue
            try:
                values[key] = self._read_device(handle)
            except self._nvml.NVMLError as exc:
                self._lost[key] = f"NVML error: {exc}"
        return values


class NvmlCounterSource(_NvmlSource):
    """GPUs with an energy counter (Volta and newer): ``nvmlDeviceGetTotalEnergyConsumption``.

    The counter (mJ since the driver loaded) is the truth to build on; it changes every 100 ms,
    so it is read every 50 ms and each change is timestamped midway between the two reads
    around it (within 25 ms, unbiased). Reading faster costs CPU (an NVML call took 3.4-4.4 ms
    on an H100) for little gain.
    """

    method = "counter"
    poll_interval_s = NVML_COUNTER_PERIOD_S / 2
    discrete = True

    def _read_device(self, handle: Any) -> float:
        return self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0


class NvmlPowerSource(_NvmlSource):
    """GPUs without an energy counter: ``nvmlDeviceGetPowerUsage`` integrated over time.

    Flagged ``sampled-power``: on recent GPUs that reading is a lagging one-second average, so it
    is used only where no counter exists.
    """

    method = "sampled-power"
    poll_interval_s = 0.1

    def __init__(self, nvml: Any, indices: list[int] | None = None, clock: Any = None) -> None:
        super().__init__(nvml, indices)
        self._clock = clock or time.monotonic
        self._last: dict[str, tuple[float, float]] = {}  # key -> (time, watts)
        self._joules: dict[str, float] = {}

    def read(self) -> dict[str, float]:
        now = self._clock()
        for key, handle in self._handles.items():
            if key in self._lost:
                continue
            try:
                watts = self._nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
            except self._nvml.NVMLError as exc:
                self._lost[key] = f"NVML error: {exc}"
                continue
            if key in self._last:
                then, previous = self._last[key]
                self._joules[key] = self._joules.get(key, 0.0) + (previous + watts) / 2 * (now - then)
            self._last[key] = (now, watts)
            self._joules.setdefault(key, 0.0)
        return {key: self._joules[key] for key in self._joules if key not in self._lost}


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
        count = nvml.nvmlDeviceGetCount()
        uuids = [_text(nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(i))) for i in range(count)]
        visible = visible_indices(os.environ.get("CUDA_VISIBLE_DEVICES") if respect_cuda_visible_devices else None, uuids)
        with_counter, without = [], []
        for index in visible:
            try:
                nvml.nvmlDeviceGetTotalEnergyConsumption(nvml.nvmlDeviceGetHandleByIndex(index))
                with_counter.append(index)
            except nvml.NVMLError:
                without.append(index)
        sources: list[EnergySource] = []
        if with_counter:
            sources.append(NvmlCounterSource(nvml, with_counter))
        if without:
            sources.append(NvmlPowerSource(nvml, without))
        return sources, None
    except nvml.NVMLError as exc:
        return [], f"NVML error while listing GPUs: {exc}"
