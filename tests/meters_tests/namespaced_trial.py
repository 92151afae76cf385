"""One auto trial in a PID namespace of its own, whose NVML lists this process's host PID.

Run by ``test_gpu_discovery`` under ``unshare --pid --fork --mount-proc``: the test writes the
host's PID of this process on stdin (NVML reports that one, as in a container), and this prints
what the meter found as one JSON line. The CUDA driver is "loaded" by mapping a file named like
it; everything else is the auditor as users run it.
"""

from __future__ import annotations

import json
import mmap
import os
import sys
import tempfile
import time
from pathlib import Path

from auditor.meters.nvml import nvml_sources
from auditor.meters.sampler import Meter
from auditor.meters.simulated import PowerProfile
from tests.meters_tests.fake_nvml import FakeGpu, FakeNvml


def main() -> None:
    host_pid = int(sys.stdin.readline())
    with tempfile.TemporaryDirectory() as folder:
        library = Path(folder) / "libcuda.so.1"
        library.write_bytes(b"\0" * mmap.PAGESIZE)
        with library.open("rb") as file, mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ):
            nvml = FakeNvml([FakeGpu("GPU-aaaa", "NVIDIA H100 80GB HBM3", PowerProfile.constant(400.0), holders={host_pid})],
                            time.monotonic)
            warnings: list[str] = []
            with Meter(nvml_sources(nvml)[0], warn=warnings.append) as meter:
                interval = meter.begin()
                time.sleep(1.5)
                meter.end(interval)
                measurement = meter.measure(interval)
    print(json.dumps({
        "pid": os.getpid(),
        "host_pid_exists_here": os.path.exists(f"/proc/{host_pid}"),
        "gpus": [g.key for g in measurement.gpus],
        "gpu_joules": measurement.energy["gpu"].joules if "gpu" in measurement.energy else 0.0,
        "duration_s": measurement.duration_s,
        "flags": measurement.flags,
        "warnings": warnings,
    }))


if __name__ == "__main__":
    main()
