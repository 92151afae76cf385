"""Benchmark: what the Ray Tune plugin adds per reported result and per trial.

Runs the same experiment with and without the plugin (``with_audit`` + ``AuditLoggerCallback``):
trials of a trivial function reporting ``--reports`` results each, 2 at a time on a local Ray
with 2 CPUs. The added cost per result is taken from the per-result wall time inside the
trials; the added cost per trial from the whole experiment's wall time.

Usage::

    python scripts/bench_ray.py [--trials 20] [--reports 50]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import ray
from auditor.integrations.ray_tune import AuditLoggerCallback, with_audit
from ray import tune


def trainable(reports: int):
    def train(config: dict) -> None:
        gaps = []
        last = time.perf_counter()
        for step in range(reports):
            tune.report({"step": step, "gap_ms": gaps[-1] if gaps else 0.0})
            now = time.perf_counter()
            gaps.append((now - last) * 1000)
            last = now

    return train


def experiment(trials: int, reports: int, audited: bool, directory: str) -> tuple[float, float]:
    fn = trainable(reports)
    callbacks = []
    if audited:
        audit = AuditLoggerCallback(ledger=os.path.join(directory, "ledger.db"))
        fn, callbacks = with_audit(fn), [audit]
    started = time.perf_counter()
    results = tune.Tuner(
        tune.with_resources(fn, {"cpu": 1}),
        param_space={"i": tune.grid_search(list(range(trials)))},
        run_config=tune.RunConfig(name=f"bench-{audited}", storage_path=directory, callbacks=callbacks, verbose=0),
    ).fit()
    wall = time.perf_counter() - started
    frame = results.get_dataframe()
    per_result = statistics.median(frame["gap_ms"]) if "gap_ms" in frame else float("nan")
    return wall, per_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--reports", type=int, default=50)
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    directory = tempfile.mkdtemp()
    experiment(2, 5, True, directory)  # warm up: workers, the node meter
    plain_wall, plain_gap = experiment(args.trials, args.reports, False, directory)
    audit_wall, audit_gap = experiment(args.trials, args.reports, True, directory)
    ray.shutdown()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, ray {ray.__version__}")
    print(f"{args.trials} trials x {args.reports} results, 2 trials at a time\n")
    print("| | plain | with the plugin | added |")
    print("| --- | --- | --- | --- |")
    print(f"| per result, median of the last result's gap (ms) | {plain_gap:.2f} | {audit_gap:.2f} | {audit_gap - plain_gap:+.2f} ms |")
    print(f"| per trial, whole experiment / trials (s) | {plain_wall / args.trials:.3f} | {audit_wall / args.trials:.3f} | "
          f"{(audit_wall - plain_wall) / args.trials * 1000:+.0f} ms |")


if __name__ == "__main__":
    main()
