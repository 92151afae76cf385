"""A Ray Tune search that a test kills with SIGKILL mid-trial, then resumes.

Usage: python ray_killed.py LEDGER EXPERIMENT_DIR MARKER_DIR RAY_TEMP_DIR (start|resume)
Runs 4 trials one at a time on its own local Ray; writes MARKER_DIR/started-I half-way
through trial I (I = the trial's config["i"]).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("AUDITOR_SIMULATE_GPUS", "1x200")

import ray  # noqa: E402
from auditor.integrations.ray_tune import AuditLoggerCallback, with_audit  # noqa: E402
from ray import tune  # noqa: E402


def main() -> None:
    ledger, experiments, markers, temp_dir, mode = sys.argv[1:6]

    def train(config: dict) -> None:
        for step in range(10):
            time.sleep(0.15)
            if step == 5:
                Path(markers, f"started-{config['i']}").touch()
            tune.report({"loss": float(step)})

    ray.init(num_cpus=1, num_gpus=1, include_dashboard=False, log_to_driver=False, _temp_dir=temp_dir)
    trainable = tune.with_resources(with_audit(train), {"cpu": 1, "gpu": 1})
    audit = AuditLoggerCallback(ledger=ledger)
    if mode == "resume":
        tuner = tune.Tuner.restore(str(Path(experiments, "killed")), trainable, resume_unfinished=True)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space={"i": tune.grid_search([0, 1, 2, 3])},
            run_config=tune.RunConfig(name="killed", storage_path=experiments, callbacks=[audit], verbose=0),
        )
    tuner.fit()
    ray.shutdown()


if __name__ == "__main__":
    main()
