"""Energy sources, the sampler and what this machine offers of them.

:func:`default_sources` picks the best source for each domain on this machine:

- GPU: the NVML energy counter where the GPU has one (Volta and newer), NVML power sampling
  where it does not (flagged ``sampled-power``), none without NVML;
- CPU: RAPL package counters where readable, else the process tree's CPU time x the CPU's
  rated power per logical CPU (flagged ``estimate-tdp``);
- memory: the RAPL DRAM counter where readable, else resident memory x 0.375 W/GB (flagged
  ``estimate``).

:func:`process_meter` is the one meter of this process that plugins and ``auditor.track`` share;
:mod:`~auditor.meters.node` meters trials that run elsewhere (one meter per machine of a
cluster, hosted by the framework). The first step of the flow: it imports nothing of the
auditor but ``auditor.errors`` and ``auditor.model`` (the hardware table, for rated power).
"""

from __future__ import annotations

import atexit
import os
import threading

from auditor.meters.base import Device, EnergySource
from auditor.meters.cpu import CpuTimeSource, MemoryEstimateSource, ProcessTree
from auditor.meters.nvml import nvml_sources
from auditor.meters.rapl import RaplSource, probe_rapl
from auditor.meters.sampler import Measurement, Meter
from auditor.meters.simulated import simulated_gpus_from_environment

__all__ = ["Device", "EnergySource", "Measurement", "Meter", "default_sources", "process_meter"]


def default_sources(tree: ProcessTree | None = None) -> tuple[list[EnergySource], list[str]]:
    """The best source for each domain here, and notes on what is estimated or missing and why.

    Args:
        tree: the process tree the CPU and memory estimates follow (default: this process's).
    """
    notes: list[str] = []
    sources: list[EnergySource] = []
    simulated = simulated_gpus_from_environment()
    if simulated is not None:
        sources.append(simulated)
        notes.append(f"GPU: {len(simulated.devices())} simulated GPUs (AUDITOR_SIMULATE_GPUS)")
    else:
        gpu_sources, reason = nvml_sources()
        sources.extend(gpu_sources)
        if reason:
            notes.append(f"GPU: none metered ({reason})")
    tree = tree or ProcessTree()
    rapl_status = probe_rapl()
    rapl = RaplSource() if rapl_status.available else None
    domains = {d.domain for d in rapl.devices()} if rapl else set()
    if rapl and domains:
        sources.append(rapl)
    if "cpu" not in domains:
        sources.append(CpuTimeSource(tree))
        notes.append(f"CPU: estimated from CPU time x TDP (RAPL: {rapl_status.reason or 'no package zone'})")
    if "memory" not in domains:
        sources.append(MemoryEstimateSource(tree))
        notes.append("memory: estimated from resident memory x 0.375 W/GB")
    return sources, notes


_meter: Meter | None = None
_meter_pid: int | None = None
_meter_notes: list[str] = []
_meter_lock = threading.Lock()


def process_meter() -> Meter:
    """This process's meter, started on first use and stopped at exit (a new one after a fork)."""
    global _meter, _meter_pid, _meter_notes
    with _meter_lock:
        if _meter is None or _meter_pid != os.getpid():
            sources, _meter_notes = default_sources()
            _meter, _meter_pid = Meter(sources).start(), os.getpid()
            atexit.register(_meter.stop)
        return _meter


def meter_notes() -> list[str]:
    """What the process meter estimates or misses, and why (empty before it starts)."""
    return list(_meter_notes)
