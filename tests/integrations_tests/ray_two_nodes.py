"""A 2-node Ray cluster on this machine (ray.cluster_utils.Cluster), each node with one logical
GPU metered by the simulated GPU source; prints what the ledger holds as JSON.

Usage: python ray_two_nodes.py LEDGER STORAGE_DIR
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ["AUDITOR_SIMULATE_GPUS"] = "1x250"

import ray  # noqa: E402
from auditor.integrations.ray_tune import AuditLoggerCallback, with_audit  # noqa: E402
from ray import tune  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from auditor.ledger import Ledger  # noqa: E402


def train(config: dict) -> None:
    for step in range(4):
        time.sleep(0.1)
        tune.report({"loss": config["x"] * step})


def main() -> None:
    ledger, storage = sys.argv[1:3]
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 1})
    cluster.add_node(num_cpus=1, num_gpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        audit = AuditLoggerCallback(ledger=ledger, region="DE")
        tuner = tune.Tuner(
            tune.with_resources(with_audit(train), {"cpu": 1, "gpu": 1}),
            param_space={"x": tune.grid_search([1, 2, 3, 4])},
            run_config=tune.RunConfig(name="two-nodes", storage_path=storage, callbacks=[audit], verbose=0),
        )
        tuner.fit()
    finally:
        ray.shutdown()
        cluster.shutdown()
    with Ledger.open(ledger) as store:
        trials = store.trials("two-nodes")
        rows = store.trials("two-nodes", include_idle=True)  # the experiment's overhead too
        usage = store.usage("two-nodes")
    print(json.dumps({
        "trials": [{"key": t.trial_key, "state": t.state.value, "gpu_j": t.energy["gpu"].joules,
                    "node": next((f for f in t.flags if f.startswith("node: ")), None), "gpu_seconds": t.gpu_seconds}
                   for t in trials],
        "usage_kwh": usage.energy_kwh,
        "sum_kwh": sum(t.energy_kwh for t in rows),
        "idle_kwh": sum(t.energy_kwh for t in rows if t.state.value == "idle"),
    }))


if __name__ == "__main__":
    main()
