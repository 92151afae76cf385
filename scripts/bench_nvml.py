"""On a real NVIDIA GPU: what each NVML call the auditor uses costs, and the sampler's CPU share.

Times (median of 200 calls, wall and CPU) every NVML call the meter makes per read: the energy
counter through ``nvmlDeviceGetTotalEnergyConsumption`` and through ``nvmlDeviceGetFieldValues``
(total-energy field), the instant-power field, ``nvmlDeviceGetPowerUsage`` and the compute
process list. Then runs the process meter for ``--seconds`` and reports the CPU time of its
sampler thread per wall second (target: under 1 % of a core), with the call it chose and the
cadence it settled on. Prints one JSON line.

Usage::

    python scripts/bench_nvml.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time


def timed(call, *args, n: int = 200) -> dict[str, float]:  # noqa: ANN001 - any NVML function
    walls, cpus = [], []
    for _ in range(n):
        wall, cpu = time.perf_counter(), time.thread_time()
        call(*args)
        cpus.append(time.thread_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return {"wall_us": round(statistics.median(walls) * 1e6, 1), "cpu_us": round(statistics.median(cpus) * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    import pynvml

    from auditor.meters import process_meter

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    calls = {
        "nvmlDeviceGetTotalEnergyConsumption": timed(pynvml.nvmlDeviceGetTotalEnergyConsumption, handle),
        "nvmlDeviceGetFieldValues(TOTAL_ENERGY_CONSUMPTION)": timed(
            pynvml.nvmlDeviceGetFieldValues, handle, [pynvml.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION]),
        "nvmlDeviceGetFieldValues(POWER_INSTANT)": timed(pynvml.nvmlDeviceGetFieldValues, handle, [pynvml.NVML_FI_DEV_POWER_INSTANT]),
        "nvmlDeviceGetPowerUsage": timed(pynvml.nvmlDeviceGetPowerUsage, handle),
        "nvmlDeviceGetComputeRunningProcesses": timed(pynvml.nvmlDeviceGetComputeRunningProcesses, handle, n=50),
    }
    field = pynvml.nvmlDeviceGetFieldValues(handle, [pynvml.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION])[0]
    meter = process_meter()
    sampler = next(t for t in threading.enumerate() if t.name == "auditor-sampler")
    before = time.clock_gettime(time.pthread_getcpuclockid(sampler.ident))
    start = time.monotonic()
    time.sleep(args.seconds)
    cpu = time.clock_gettime(time.pthread_getcpuclockid(sampler.ident)) - before
    wall = time.monotonic() - start
    gpu_sources = [s for s in meter.sources if any(d.is_gpu for d in s.devices())]
    print(json.dumps({
        "calls": calls,
        "field_counter_matches_function_mj": [int(field.value.ullVal), pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)],
        "chosen": {str(i): c.name for s in gpu_sources for i, c in getattr(s, "calls", {}).items()},
        "cadence_s": {type(s).__name__: round(meter.poll_interval(s), 4) for s in meter.sources},
        "sampler_cpu_share_of_a_core": round(cpu / wall, 5),
        "samples_per_s": round(meter.samples_taken / wall, 1),
    }))


if __name__ == "__main__":
    main()
