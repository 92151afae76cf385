"""MIG instances: a slice of a GPU has no energy counter of its own, so its share of the parent's.

On a GPU split by Multi-Instance GPU, ``CUDA_VISIBLE_DEVICES`` names instances by their
``MIG-...`` UUID, and NVML answers ``Not Supported`` for an instance's energy counter. The
parent GPU's counter still runs; an instance is charged the parent's energy times its share of
the GPU's compute slices (3 of 7 slices: 3/7). That share is an estimate: the parent's energy
includes what the other instances draw, so records of instances carry the flag
``mig-slice-share``.

Example:
    >>> MigInstance("MIG-a", parent_index=0, handle=None, parent=None, slices=3, total_slices=7,
    ...             name="NVIDIA A100 MIG 3g.40gb").share
    0.42857142857142855
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MIG_FLAG = "mig-slice-share"
DEFAULT_TOTAL_SLICES = 7  # A100, H100 and H200 split into at most 7 compute slices
_PROFILES_LARGEST_FIRST = ("NVML_GPU_INSTANCE_PROFILE_8_SLICE", "NVML_GPU_INSTANCE_PROFILE_7_SLICE")


@dataclass(frozen=True)
class MigInstance:
    """One MIG instance and the parent GPU whose counter it shares.

    Attributes:
        uuid: the instance's ``MIG-...`` UUID (what ``CUDA_VISIBLE_DEVICES`` names).
        parent_index: NVML index of the parent GPU.
        handle: the instance's NVML handle (lists its processes).
        parent: the parent GPU's NVML handle (its energy counter).
        slices: compute slices of the instance.
        total_slices: compute slices of the whole GPU.
        name: the instance's name as NVML gives it.
    """

    uuid: str
    parent_index: int
    handle: Any
    parent: Any
    slices: int
    total_slices: int
    name: str

    @property
    def share(self) -> float:
        """The instance's share of the parent's energy."""
        return self.slices / self.total_slices


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def total_slices(nvml: Any, parent: Any) -> int:
    """Compute slices of the whole GPU: the largest GPU-instance profile it supports."""
    for name in _PROFILES_LARGEST_FIRST:
        profile = getattr(nvml, name, None)
        if profile is None:
            continue
        try:
            return int(nvml.nvmlDeviceGetGpuInstanceProfileInfo(parent, profile).sliceCount)
        except nvml.NVMLError:
            continue
    return DEFAULT_TOTAL_SLICES


def mig_instances(nvml: Any, parents: list[Any]) -> list[MigInstance]:
    """Every MIG instance of the GPUs ``parents`` (NVML handles, in NVML's order)."""
    instances: list[MigInstance] = []
    for index, parent in enumerate(parents):
        try:
            current, _pending = nvml.nvmlDeviceGetMigMode(parent)
        except nvml.NVMLError:  # not a MIG-capable GPU
            continue
        if current != getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1):
            continue
        whole = total_slices(nvml, parent)
        for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(parent)):
            try:
                handle = nvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, slot)
                slices = int(nvml.nvmlDeviceGetAttributes(handle).gpuInstanceSliceCount)
                uuid = _text(nvml.nvmlDeviceGetUUID(handle))
                name = _text(nvml.nvmlDeviceGetName(handle))
            except nvml.NVMLError:  # an empty slot
                continue
            instances.append(MigInstance(uuid, index, handle, parent, slices, whole, name))
    return instances
