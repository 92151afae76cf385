"""The CPU: its model, its rated power (TDP) from the hardware table, and the power per thread.

CPU energy without RAPL is estimated as CPU time x watts per logical CPU, where the watts are
the CPU's TDP over its logical CPUs per socket. For a CPU the table does not hold,
:data:`DEFAULT_WATTS_PER_LOGICAL_CPU` is used: 4 W, about the median of the server CPUs in the
table (e.g. Xeon Gold 6148: 150 W / 40 threads = 3.75 W). Such figures are flagged as estimates.

Example:
    >>> info = probe_cpu(cpuinfo="model name\\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz\\nsiblings\\t: 40\\n")
    >>> info.tdp.tdp_watts, info.watts_per_logical_cpu
    (150.0, 3.75)
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from auditor.hardware import HardwareSpec, identify_hardware

DEFAULT_WATTS_PER_LOGICAL_CPU = 4.0


@dataclass(frozen=True)
class CpuInfo:
    """The CPU model, logical CPUs per socket, and the TDP found for it (None if unknown)."""

    model: str
    logical_cpus_per_socket: int
    tdp: HardwareSpec | None

    @property
    def watts_per_logical_cpu(self) -> float:
        """Rated power of one logical CPU (hardware thread), for CPU-time estimates."""
        if self.tdp is None:
            return DEFAULT_WATTS_PER_LOGICAL_CPU
        return self.tdp.tdp_watts / max(1, self.logical_cpus_per_socket)


def _field(cpuinfo: str, key: str) -> str | None:
    for line in cpuinfo.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() == key:
            return value.strip()
    return None


def probe_cpu(cpuinfo: str | None = None) -> CpuInfo:
    """Read the CPU model from ``/proc/cpuinfo`` (or the text given) and look up its TDP."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    model = _field(cpuinfo, "model name") or platform.processor() or "unknown CPU"
    siblings = _field(cpuinfo, "siblings")
    per_socket = int(siblings) if siblings and siblings.isdigit() else (os.cpu_count() or 1)
    return CpuInfo(model=model, logical_cpus_per_socket=per_socket, tdp=identify_hardware(model, kind="cpu"))
