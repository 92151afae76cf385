"""Accuracy of the energy the auditor attributes to bursts of GPU work, on a real NVIDIA GPU.

For bursts of 0.05 s to 10 s of the same matmul kernel, compares:

- ``auditor``: the energy the meter attributes to the burst's interval (sampler thread, NVML
  counter, interpolated at both ends), as a plugin would record it;
- ``codecarbon``: the same burst inside CodeCarbon's ``OfflineEmissionsTracker`` (if installed);

against the reference: the counter's own delta over the burst taken with a long settle
(counter read ``--settle`` seconds before the burst and after it, minus the idle power measured
just before, over those settle seconds).

Targets: within 2 % for bursts of 1 s and more, 5 % from 0.5 s, and no burst at 0 J.

Usage (needs torch with CUDA and nvidia-ml-py)::

    python scripts/bench_accuracy.py [--reps 5] [--settle 2.0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

BURSTS = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--settle", type=float, default=2.0)
    parser.add_argument("--gpu", type=int, default=0)
    args = parser.parse_args()
    try:
        import pynvml
        import torch
    except ImportError as exc:
        sys.exit(f"error: {exc.name} is not installed: this benchmark needs torch with CUDA and nvidia-ml-py")
    if not torch.cuda.is_available():
        sys.exit("error: no CUDA GPU here: run this benchmark on a machine with an NVIDIA GPU")

    from auditor.meters.nvml import NvmlCounterSource, load_nvml
    from auditor.meters.sampler import Meter

    nvml = load_nvml()
    handle = pynvml.nvmlDeviceGetHandleByIndex(args.gpu)
    torch.cuda.set_device(args.gpu)
    x = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)

    def counter_j() -> float:
        return pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0

    def burst(seconds: float) -> None:
        torch.cuda.synchronize()
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(2):
                x @ x
            torch.cuda.synchronize()

    try:
        from codecarbon import OfflineEmissionsTracker
    except ImportError:
        OfflineEmissionsTracker = None  # noqa: N806

    meter = Meter([NvmlCounterSource(nvml, [args.gpu])]).start()
    burst(3.0)  # warm up clocks and kernels
    rows = []
    for seconds in BURSTS:
        errors: dict[str, list[float]] = {"auditor": [], "codecarbon": []}
        zero = 0
        for _ in range(args.reps):
            time.sleep(args.settle)
            idle_start, idle_j0 = time.perf_counter(), counter_j()
            time.sleep(args.settle)
            idle_watts = (counter_j() - idle_j0) / (time.perf_counter() - idle_start)
            before_t, before_j = time.perf_counter(), counter_j()
            interval = meter.begin(gpus=[args.gpu])
            burst(seconds)
            meter.end(interval)
            time.sleep(args.settle)
            after_t, after_j = time.perf_counter(), counter_j()
            reference = (after_j - before_j) - idle_watts * ((after_t - before_t) - seconds)
            measured = meter.measure(interval).energy["gpu"].joules
            zero += measured == 0
            errors["auditor"].append((measured - reference) / reference)
            if OfflineEmissionsTracker is not None:
                tracker = OfflineEmissionsTracker(country_iso_code="USA", log_level="error", save_to_file=False,
                                                  gpu_ids=[args.gpu], measure_power_secs=1)
                tracker.start()
                burst(seconds)
                tracker.stop()
                cc_joules = tracker._total_gpu_energy.kWh * 3.6e6
                errors["codecarbon"].append((cc_joules - reference) / reference)
        cells = []
        for name in ("auditor", "codecarbon"):
            values = errors[name]
            cells.append(
                f"{100 * statistics.median(values):+.1f} % ({100 * max(values, key=abs):+.1f} %)" if values else "n/a"
            )
        rows.append(f"| {seconds:g} s | {cells[0]} | {cells[1]} | {zero} |")
    meter.stop()
    name = pynvml.nvmlDeviceGetName(handle)
    print(f"GPU: {name}, driver {pynvml.nvmlSystemGetDriverVersion()}; {args.reps} bursts each, settle {args.settle:g} s")
    print("\n| burst | auditor: median (worst) | CodeCarbon: median (worst) | auditor bursts at 0 J |")
    print("| --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
