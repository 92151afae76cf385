"""Two Ray Tune drivers on one local cluster, sharing one ledger and one project budget; prints
what they spent as JSON.

Usage: python ray_two_drivers.py LEDGER STORAGE_DIR RESERVE(0|1)
       (each driver: python ray_two_drivers.py --driver ADDRESS LEDGER STORAGE_DIR RESERVE NAME)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

os.environ["AUDITOR_SIMULATE_GPUS"] = "4x250"

import ray  # noqa: E402
from auditor.integrations.ray_tune import AuditLoggerCallback, with_audit  # noqa: E402
from ray import tune  # noqa: E402

from auditor.ledger import Ledger  # noqa: E402

BUDGET = "0.002 GPUh"  # 7.2 GPU-seconds for both experiments together


def train(config: dict) -> None:
    for step in range(8):
        time.sleep(0.1)
        tune.report({"loss": config["x"] * (8 - step)})


def driver(address: str, ledger: str, storage: str, reserve: bool, name: str) -> None:
    ray.init(address=address, log_to_driver=False)
    audit = AuditLoggerCallback(ledger=ledger, budget=BUDGET, scope="project", reserve=reserve, sweep=name)
    tuner = tune.Tuner(
        tune.with_resources(with_audit(train), {"cpu": 1, "gpu": 1}),
        param_space={"x": tune.grid_search([float(i) for i in range(1, 21)])},
        tune_config=tune.TuneConfig(max_concurrent_trials=2),
        run_config=tune.RunConfig(name=name, storage_path=storage, callbacks=[audit], stop=audit.stopper, verbose=0),
    )
    tuner.fit()
    ray.shutdown()


def main() -> None:
    ledger, storage, reserve = sys.argv[1:4]
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 4, "num_gpus": 4})
    try:
        drivers = [subprocess.Popen([sys.executable, __file__, "--driver", cluster.address, ledger, storage, reserve, name])
                   for name in ("driver-a", "driver-b")]
        codes = [d.wait(timeout=300) for d in drivers]
    finally:
        cluster.shutdown()
    with Ledger.open(ledger) as store:
        sweeps = {s.name: store.usage(s.name) for s in store.sweeps()}
        trials = [t for s in sweeps for t in store.trials(s)]
        holders = store.reservation_holders()
    print(json.dumps({
        "codes": codes, "budget_gpu_s": 7.2, "reservations_left": len(holders),
        "spent_gpu_s": {name: usage.gpu_hours * 3600 for name, usage in sweeps.items()},
        "trials": {name: usage.trials for name, usage in sweeps.items()},
        "mean_trial_gpu_s": sum(t.gpu_seconds for t in trials if t.state.value == "complete")
        / max(1, sum(1 for t in trials if t.state.value == "complete")),
    }))


if __name__ == "__main__":
    if sys.argv[1] == "--driver":
        driver(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1", sys.argv[6])
    else:
        main()
