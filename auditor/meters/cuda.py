"""Which GPUs this process tree uses when NVML cannot say: a container's own PID namespace.

``devices="auto"`` keeps the GPUs on which NVML lists a process of this tree. Inside Docker or
Kubernetes without the host's PID namespace, NVML lists the host's PIDs (or none): nothing
matches and every trial would silently get 0 GPUs. This module reads what the process itself
knows instead:

- with torch loaded and CUDA initialised, the devices on which torch holds a CUDA context
  (exact: torch's own record);
- otherwise, whether the CUDA driver (``libcuda.so``) is mapped into a process of the tree.
  That says the tree uses CUDA, not on which GPU, so it counts only where NVML shows it is
  looking at another PID namespace (it lists processes none of which exists here), or lists
  none while this runs in a container.

Example:
    >>> cuda_use({os.getpid()}).loaded   # this doctest process has not loaded CUDA
    False
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

logger = logging.getLogger("auditor")

ASSUMED_FLAG = "devices-assumed"


@dataclass(frozen=True)
class CudaUse:
    """What a process tree shows of its CUDA use.

    Attributes:
        loaded: the CUDA driver is loaded in a process of the tree.
        devices: CUDA ordinals (in ``CUDA_VISIBLE_DEVICES`` order) holding a context, where
            torch says; None when unknown.
        uuids: the UUIDs torch gives for those devices, where it gives them (same order).
    """

    loaded: bool
    devices: list[int] | None = None
    uuids: list[str] | None = None


def torch_contexts() -> tuple[list[int], list[str]] | None:
    """CUDA ordinals on which this process's torch holds a context, and their UUIDs; None
    where torch is not loaded or has not initialised CUDA (never initialises it)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if not torch.cuda.is_initialized():
            return None
        ordinals = [i for i in range(torch.cuda.device_count()) if torch._C._cuda_hasPrimaryContext(i)]
        uuids = []
        for i in ordinals:
            uuid = str(getattr(torch.cuda.get_device_properties(i), "uuid", "") or "")
            uuids.append(uuid)
        return ordinals, uuids
    except Exception as exc:  # noqa: BLE001 - an old torch without these: fall back to the driver
        logger.debug("torch's CUDA contexts unreadable: %s", exc)
        return None


def driver_loaded(pid: int) -> bool:
    """Whether the CUDA driver library is mapped into process ``pid``."""
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as maps:
            return any("libcuda.so" in line for line in maps)
    except OSError:
        return False


def cuda_use(pids: set[int], look_for_driver: bool = True) -> CudaUse:
    """What the process tree ``pids`` (this process among them) shows of its CUDA use: torch's
    contexts, else (if ``look_for_driver``: it reads every process's memory map) the driver."""
    contexts = torch_contexts() if os.getpid() in pids else None
    if contexts is not None and contexts[0]:
        return CudaUse(True, contexts[0], contexts[1])
    return CudaUse(look_for_driver and any(driver_loaded(pid) for pid in pids))


def pid_exists(pid: int) -> bool:
    """Whether ``pid`` is a process in this PID namespace."""
    return os.path.exists(f"/proc/{pid}")


def in_container() -> bool:
    """Whether this runs in a container (Docker, Podman or a Kubernetes pod)."""
    return (
        os.path.exists("/.dockerenv")
        or os.path.exists("/run/.containerenv")
        or "KUBERNETES_SERVICE_HOST" in os.environ
    )


def other_namespace(listed: dict[str, set[int]]) -> bool:
    """Whether NVML's process lists come from another PID namespace: it lists processes and
    none of them exists here, or it lists none at all in a container."""
    pids = set().union(*listed.values()) if listed else set()
    if pids:
        return not any(pid_exists(pid) for pid in pids)
    return in_container()


def matching_keys(use: CudaUse, gpu_keys: list[str]) -> list[str]:
    """The device keys of the GPUs ``use`` names (``gpu_keys`` in CUDA's order), matched by
    UUID where torch gives one and by ordinal otherwise; every GPU when it names none.

    Example:
        >>> matching_keys(CudaUse(True, [1], ["bbbb"]), ["gpu:GPU-aaaa", "gpu:GPU-bbbb"])
        ['gpu:GPU-bbbb']
        >>> matching_keys(CudaUse(True), ["gpu:GPU-aaaa", "gpu:GPU-bbbb"])
        ['gpu:GPU-aaaa', 'gpu:GPU-bbbb']
    """
    if use.devices is None:
        return list(gpu_keys)
    keys = []
    for position, ordinal in enumerate(use.devices):
        uuid = (use.uuids or [""] * len(use.devices))[position].removeprefix("GPU-")
        by_uuid = [k for k in gpu_keys if uuid and uuid in k]
        if by_uuid:
            keys.append(by_uuid[0])
        elif ordinal < len(gpu_keys):
            keys.append(gpu_keys[ordinal])
    return keys
