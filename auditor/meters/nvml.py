"""NVIDIA GPUs through NVML (nvidia-ml-py): which GPUs this process sees, and their counters.

Example:
    >>> visible_indices("1,0", ["GPU-a", "GPU-b", "GPU-c"])
    [1, 0]
    >>> visible_indices("GPU-c", ["GPU-a", "GPU-b", "GPU-c"])
    [2]
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


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
