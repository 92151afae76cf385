"""Benchmark the meter: critical-path latency, the sampler's own CPU, the timeline's memory.

1. Latency added on a trial's critical path: one interval opened and closed (``begin`` +
   ``end``) while the sampler runs at its default cadence. Target: median <= 0.2 ms.
2. The sampler's CPU use at its default cadence, with the sources this machine offers plus
   two simulated GPUs read like NVML counters (every 25 ms). Target: <= 1 % of one core.
3. The timeline's memory after 24 simulated hours (a manual clock, two GPUs whose counters
   step every 100 ms, a trial every minute).

Usage::

    python scripts/bench_meter.py [--intervals 20000] [--cpu-seconds 20] [--hours 24]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import tracemalloc

from auditor.meters import default_sources
from auditor.meters.sampler import Meter
from auditor.meters.simulated import PowerProfile, SimulatedGpuSource


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def bench_latency(intervals: int) -> tuple[float, float]:
    sources, _ = default_sources()
    with Meter([SimulatedGpuSource([PowerProfile.constant(300.0)] * 2), *sources]) as meter:
        timings = []
        for _ in range(intervals):
            start = time.perf_counter_ns()
            interval = meter.begin(gpus="all")
            meter.end(interval)
            timings.append(time.perf_counter_ns() - start)
            time.sleep(0.0001)
    timings.sort()
    return statistics.median(timings) / 1e6, timings[int(len(timings) * 0.99)] / 1e6


def bench_sampler_cpu(seconds: float) -> tuple[float, int]:
    sources, _ = default_sources()
    meter = Meter([SimulatedGpuSource([PowerProfile.constant(300.0)] * 2), *sources]).start()
    time.sleep(1.0)
    cpu0, wall0, samples0 = time.process_time(), time.perf_counter(), meter.samples_taken
    time.sleep(seconds)  # the main thread sleeps: the process's CPU time is the sampler's
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    samples = meter.samples_taken - samples0
    meter.stop()
    return 100 * cpu / wall, int(samples / wall)


def bench_memory(hours: float) -> tuple[int, int, int, float]:
    """Two simulated GPUs whose counters step every 100 ms, read at that cadence for ``hours``
    of manual-clock time, with a trial opened and closed every minute."""
    clock = ManualClock()
    gpus = SimulatedGpuSource([PowerProfile.constant(300.0)] * 2, clock=clock)
    meter = Meter([gpus], clock=clock)
    tracemalloc.start()
    started = time.perf_counter()
    step, trial = 0.1, None
    per_minute = int(60 / step)
    for i in range(int(hours * 3600 / step)):
        clock.now += step
        meter._sample([gpus])
        if i % per_minute == 0:
            if trial is not None:
                meter.end(trial)
            trial = meter.begin(gpus="all")
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return meter.timeline.nbytes, current, peak, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", type=int, default=20_000)
    parser.add_argument("--cpu-seconds", type=float, default=20.0)
    parser.add_argument("--hours", type=float, default=24.0)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {platform.processor() or platform.platform()}, Python {platform.python_version()}")
    median, p99 = bench_latency(args.intervals)
    print(f"1. begin+end latency over {args.intervals:,} intervals: median {median:.4f} ms, p99 {p99:.4f} ms (target median <= 0.2 ms)")
    cpu, rate = bench_sampler_cpu(args.cpu_seconds)
    print(f"2. sampler CPU at the default cadence over {args.cpu_seconds:g} s: {cpu:.2f} % of one core, {rate} samples/s (target <= 1 %)")
    timeline, current, peak, took = bench_memory(args.hours)
    print(
        f"3. after {args.hours:g} simulated hours: timeline {timeline / 2**20:.1f} MiB, "
        f"all meter allocations {current / 2**20:.1f} MiB (peak {peak / 2**20:.1f} MiB); simulated in {took:.0f} s"
    )


if __name__ == "__main__":
    main()
