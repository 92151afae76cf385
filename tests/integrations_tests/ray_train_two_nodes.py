"""A Ray Tune experiment whose trials each run a Ray Train ``TorchTrainer`` (Train V2), on a
2-node Ray cluster on this machine (ray.cluster_utils.Cluster), each node with one logical GPU
metered by the simulated GPU source. Each worker writes its own CPU time (from its loop's
start to its end, and its whole process's) to a file; the script prints, as JSON, the ledger's
rows, those files, Ray's ResultGrid figures, and the machine's busy CPU seconds over the fit.

Usage: python ray_train_two_nodes.py LEDGER STORAGE_DIR WORKERS [gpu]
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ["AUDITOR_SIMULATE_GPUS"] = "1x250"

import ray  # noqa: E402
from auditor.integrations.ray_tune import AuditLoggerCallback, with_audit  # noqa: E402
from ray import train, tune  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402
from ray.train import RunConfig, ScalingConfig  # noqa: E402
from ray.train.torch import TorchConfig, TorchTrainer  # noqa: E402
from ray.tune.integration.ray_train import TuneReportCallback  # noqa: E402

from auditor.ledger import Ledger  # noqa: E402

BUSY_S = 1.5


@with_audit
def train_loop(config: dict) -> None:
    """Each worker: busy for BUSY_S of CPU, then says what it spent."""
    began_cpu = time.process_time()
    while time.process_time() - began_cpu < BUSY_S:
        pass
    spent = time.process_time() - began_cpu
    node = ray.get_runtime_context().get_node_id()
    with open(os.path.join(config["out"], f"worker-{os.getpid()}.json"), "w") as out:
        json.dump({"loop_cpu_s": spent, "node": node, "gpus": ray.get_gpu_ids()}, out)
    train.report({"loss": config["x"]})


def trial(config: dict) -> None:
    trial_id = tune.get_context().get_trial_id()
    out = os.path.join(config["root"], trial_id)
    os.makedirs(out, exist_ok=True)
    trainer = TorchTrainer(
        train_loop, train_loop_config={"x": config["x"], "out": out},
        scaling_config=ScalingConfig(num_workers=config["workers"], use_gpu=config["gpu"], placement_strategy="SPREAD"),
        torch_config=TorchConfig(backend="gloo"),
        run_config=RunConfig(name=f"train-{trial_id}", storage_path=config["storage"], callbacks=[TuneReportCallback()]),
    )
    trainer.fit()


def machine_busy_s() -> float:
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]  # noqa: SIM115 (open while the process runs)
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ledger, storage, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    gpu = len(sys.argv) > 4 and sys.argv[4] == "gpu"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 1})
    cluster.add_node(num_cpus=2, num_gpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    root = os.path.join(storage, "workers")
    try:
        audit = AuditLoggerCallback(ledger=ledger, region="DE")
        busy = machine_busy_s()
        grid = tune.Tuner(
            tune.with_resources(with_audit(trial), {"cpu": 0.01}),
            param_space={"x": tune.grid_search([1, 2]), "workers": workers, "gpu": gpu, "root": root, "storage": storage},
            run_config=tune.RunConfig(name="train-in-tune", storage_path=storage, callbacks=[audit], verbose=0),
        ).fit()
        busy = machine_busy_s() - busy
        shown = {r.metrics["trial_id"]: {k: v for k, v in r.metrics.items() if k.startswith("auditor/")} for r in grid}
    finally:
        ray.shutdown()
        cluster.shutdown()
    with Ledger.open(ledger) as store:
        rows = store.trials("train-in-tune", include_idle=True)
        usage = store.usage("train-in-tune")
    reported = {}
    for trial_id in os.listdir(root):
        reported[trial_id] = [json.load(open(os.path.join(root, trial_id, name))) for name in os.listdir(os.path.join(root, trial_id))]  # noqa: SIM115 (open while the process runs)
    print(json.dumps({
        "rows": [{"key": r.trial_key, "state": r.state.value, "gpu_seconds": r.gpu_seconds, "flags": r.flags,
                  "energy": {d: e.joules for d, e in r.energy.items()}, "devices": r.devices} for r in rows],
        "usage_kwh": usage.energy_kwh, "workers": reported, "shown": shown, "machine_busy_s": busy,
    }))


if __name__ == "__main__":
    main()
