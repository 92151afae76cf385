"""The sampler's CPU share when NVML reads are costly (simulated), and what it does to accuracy.

Plays ``--gpus`` GPUs through the fake NVML of the tests, each counter call burning
``--call-ms`` of CPU (4 ms: what ``nvmlDeviceGetTotalEnergyConsumption`` took on an H100 VM),
with no cheaper field call; runs the meter for ``--seconds`` with one interval open on every
GPU, then reports the CPU the reads burnt per wall second, the cadence the sampler settled on,
the interval's energy against the profile's (400 W a GPU) and trials + idle against the
counters. Usage::

    PYTHONPATH=. .venv/bin/python scripts/bench_cadence.py [--gpus 8] [--call-ms 4] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import time

from auditor.meters.nvml import nvml_sources
from auditor.meters.sampler import Meter
from auditor.meters.simulated import PowerProfile
from tests.meters_tests.fake_nvml import FakeGpu, FakeNvml

WATTS = 400.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--call-ms", type=float, default=4.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    gpus = [FakeGpu(f"GPU-{i:04d}", "NVIDIA H100 80GB HBM3", PowerProfile.constant(WATTS)) for i in range(args.gpus)]
    nvml = FakeNvml(gpus, time.monotonic, counter_cost_s=args.call_ms / 1000, field_cost_s=None)
    set_up = time.monotonic()
    meter = Meter(nvml_sources(nvml)[0]).start()
    set_up_s, burnt_at_start, started = time.monotonic() - set_up, nvml.spent_s, time.monotonic()
    interval = meter.begin(gpus="all")
    time.sleep(args.seconds)
    wall, burnt = time.monotonic() - started, nvml.spent_s - burnt_at_start
    meter.end(interval)
    measurement = meter.measure(interval, timeout=60.0)
    meter.stop()
    gpu_j = measurement.energy["gpu"].joules
    idle = sum(meter.idle_joules().values())
    print(json.dumps({
        "gpus": args.gpus, "call_ms": args.call_ms, "seconds": round(wall, 1),
        "set_up_s": round(set_up_s, 3),
        "reads_cpu_share_of_a_core": round(burnt / wall, 4),
        "cadence_s": round(meter.poll_interval(meter.sources[0]), 2),
        "interval_vs_profile": round(gpu_j / (WATTS * args.gpus * measurement.duration_s) - 1, 4),
        "trials_plus_idle_vs_counters": (gpu_j + idle) / sum(meter.counter_deltas().values()) - 1,
    }))


if __name__ == "__main__":
    main()
