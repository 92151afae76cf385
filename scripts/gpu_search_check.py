"""On a real NVIDIA GPU: an audited Optuna search of a torch model, two trials sharing the GPU.

Checks what issue 13 asks of a real search: every trial has GPU energy, and the trials' GPU
energy plus the search's idle GPU energy equals the GPU counter's delta over the search
(within 1 %), read both by the meter and straight from NVML around the whole search. Prints
one JSON line; exits 1 when a check fails.

Usage (torch with CUDA, nvidia-ml-py, optuna)::

    python scripts/gpu_search_check.py [--trials 8] [--jobs 2] [--ledger PATH]

Under ``unshare --pid --fork --mount-proc`` (as root) it checks that ``devices="auto"`` still
finds the GPU from inside a PID namespace of its own, as in a container.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--ledger", default=os.path.join(tempfile.mkdtemp(), "ledger.db"))
    args = parser.parse_args()
    import optuna
    import pynvml
    import torch
    from auditor.integrations.optuna import AuditCallback

    from auditor.meters import process_meter

    if not torch.cuda.is_available():
        sys.exit("error: no CUDA GPU here")
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    counter_before = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0

    def objective(trial: optuna.Trial) -> float:
        width = trial.suggest_int("width", 512, 4096, log=True)
        steps = trial.suggest_int("steps", 200, 800)
        model = torch.nn.Sequential(torch.nn.Linear(1024, width), torch.nn.ReLU(), torch.nn.Linear(width, 1)).cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        x, y = torch.randn(4096, 1024, device="cuda"), torch.randn(4096, 1, device="cuda")
        for _ in range(steps):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
        return float(loss)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    audit = AuditCallback(ledger=args.ledger, sweep="gpu-check", region="DE")
    study = optuna.create_study(study_name="gpu-check")
    audit.attach(study)
    started = time.monotonic()
    study.optimize(objective, n_trials=args.trials, n_jobs=args.jobs, callbacks=[audit])
    audit.flush()
    meter = process_meter()
    meter.flush()
    counter_after = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0
    records = [r for r in audit.ledger.trials("gpu-check") if r.state.value != "idle"]
    idle = [r for r in audit.ledger.trials("gpu-check") if r.state.value == "idle"]
    gpu_key = next((k for k in meter.devices if k.startswith("gpu:")), None)
    trials_j = sum(r.energy["gpu"].joules for r in records if "gpu" in r.energy)
    idle_j = sum(r.energy["gpu"].joules for r in idle if "gpu" in r.energy)
    meter_delta = meter.counter_deltas().get(gpu_key, 0.0) if gpu_key else 0.0
    result = {
        "pid": os.getpid(),
        "seconds": round(time.monotonic() - started, 1),
        "trials": len(records),
        "trials_with_gpu_energy": sum(1 for r in records if r.energy.get("gpu") and r.energy["gpu"].joules > 0),
        "flags": sorted({f for r in records for f in r.flags}),
        "trials_gpu_j": round(trials_j, 1),
        "idle_gpu_j": round(idle_j, 1),
        "meter_counter_delta_j": round(meter_delta, 1),
        "nvml_counter_delta_j_around_search": round(counter_after - counter_before, 1),
        "trials_plus_idle_vs_meter": round((trials_j + idle_j) / meter_delta - 1, 5) if meter_delta else None,
    }
    print(json.dumps(result))
    ok = result["trials_with_gpu_energy"] == len(records) and result["trials_plus_idle_vs_meter"] is not None \
        and abs(result["trials_plus_idle_vs_meter"]) <= 0.01
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
