"""Benchmark: what the Ray Tune plugin adds per reported result and per trial, end to end.

Runs the same experiment with and without the plugin (``with_audit`` + ``AuditLoggerCallback``),
alternating, ``--rounds`` times each: trials of a trivial function reporting ``--reports``
results each, 2 at a time on a local Ray with 2 CPUs. What a user sees:

- per result: the time between two ``tune.report`` calls inside the trials, every result of
  every trial (median and mean);
- per trial, in the trial: from Ray's ``on_trial_start`` to its ``on_trial_complete``, as the
  driver sees them (median): what the plugin adds inside each trial's span;
- per trial, end to end: the experiment's wall time divided by its trials, the plugin's set-up
  included (its node meter is killed before each audited round, so each starts it afresh, as
  a new cluster does) and its last ledger write: ``Tuner.fit`` returns after the callback's
  ``on_experiment_end``. Each audited round checks that the ledger holds every trial.

``--asha`` runs each experiment under ASHA (``tune.TuneConfig(scheduler=ASHAScheduler(...))``,
metric ``loss``, which falls with each step and rises with the trial's index, so both variants
cut the same trials at the same rungs): the plugin finds the scheduler there and records each
trial's state, as users run it.

On a 2-core machine most of a trivial trial's wall time is Ray starting its actor process
(about 1.8 s, two at a time), and an experiment of 20 trials varies by about 1 s from run to
run with or without the plugin: ``--trials 60`` gives a steadier end-to-end figure.

Usage::

    python scripts/bench_ray.py [--trials 20] [--reports 50] [--rounds 3] [--asha]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import ray
from auditor.integrations.ray_tune import AuditLoggerCallback, node_meter, with_audit
from ray import tune
from ray.tune import Callback
from ray.tune.schedulers import ASHAScheduler

from auditor.ledger import Ledger


def trainable(reports: int):
    def train(config: dict) -> None:
        last = time.perf_counter()
        for step in range(reports):
            now = time.perf_counter()
            tune.report({"step": step, "gap_ms": (now - last) * 1000 if step else float("nan"),
                         "loss": (config["i"] + 1) / (step + 1)})
            last = now

    return train


class Spans(Callback):
    """Each trial's span as the driver sees it: ``on_trial_start`` to ``on_trial_complete``."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.seconds: list[float] = []

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.started[trial.trial_id] = time.perf_counter()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.seconds.append(time.perf_counter() - self.started[trial.trial_id])


def experiment(trials: int, reports: int, audited: bool, directory: str, name: str,
               asha: bool = False) -> tuple[float, list[float], list[float]]:
    """The experiment's wall time (set-up and final write included), every gap between
    reports, and every trial's span."""
    if audited:
        ray.kill(node_meter())  # each audited round starts its node meter, as a fresh cluster does
    started = time.perf_counter()
    spans = Spans()
    fn, callbacks = trainable(reports), [spans]
    ledger = os.path.join(directory, f"{name}.db")
    if audited:
        fn, callbacks = with_audit(fn), [spans, AuditLoggerCallback(ledger=ledger, sweep=name)]
    scheduler = ASHAScheduler(metric="loss", mode="min", max_t=reports, grace_period=max(2, reports // 10),
                              reduction_factor=2) if asha else None
    results = tune.Tuner(
        tune.with_resources(fn, {"cpu": 1}),
        param_space={"i": tune.grid_search(list(range(trials)))},
        tune_config=tune.TuneConfig(scheduler=scheduler),
        run_config=tune.RunConfig(name=name, storage_path=directory, callbacks=callbacks, verbose=0),
    ).fit()
    wall = time.perf_counter() - started
    if audited:
        with Ledger.open(ledger) as store:
            assert store.count_trials(name) == trials, "the ledger misses trials"
    gaps = [gap for result in results for gap in result.metrics_dataframe["gap_ms"].dropna()]
    assert (asha or len(gaps) == trials * (reports - 1)) and len(spans.seconds) == trials, "results missing"
    return wall, gaps, spans.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--reports", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--asha", action="store_true", help="run each experiment under ASHA")
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    directory = tempfile.mkdtemp()
    experiment(2, 5, False, directory, "warm-up")  # Ray's own workers, for both variants
    walls: dict[bool, list[float]] = {False: [], True: []}
    gaps: dict[bool, list[float]] = {False: [], True: []}
    spans: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(args.rounds):
        for audited in (False, True) if round_ % 2 == 0 else (True, False):
            wall, round_gaps, round_spans = experiment(args.trials, args.reports, audited, directory,
                                                       f"r{round_}-{audited}", asha=args.asha)
            walls[audited].append(wall)
            gaps[audited] += round_gaps
            spans[audited] += round_spans
    ray.shutdown()

    plain_trial, audit_trial = (statistics.median(walls[a]) / args.trials for a in (False, True))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, ray {ray.__version__}")
    print(f"{args.trials} trials x {args.reports} results{' under ASHA' if args.asha else ''}, 2 trials at a time, "
          f"{args.rounds} rounds each, alternating")
    print(f"experiment walls (s): plain {sorted(round(w, 2) for w in walls[False])}, "
          f"with the plugin {sorted(round(w, 2) for w in walls[True])}\n")
    print("| | plain | with the plugin | added |")
    print("| --- | --- | --- | --- |")
    for label, pick in (("median", statistics.median), ("mean", statistics.mean)):
        plain, audit = pick(gaps[False]), pick(gaps[True])
        print(f"| per result, {label} time between two reports (ms) | {plain:.2f} | {audit:.2f} | {audit - plain:+.2f} ms |")
    plain_span, audit_span = (statistics.median(spans[a]) * 1000 for a in (False, True))
    print(f"| per trial, in the trial: on_trial_start to on_trial_complete, median (ms) | {plain_span:.1f} | "
          f"{audit_span:.1f} | {audit_span - plain_span:+.1f} ms |")
    print(f"| per trial, end to end: the experiment (set-up, every trial, last write) / trials (s) | {plain_trial:.3f} | "
          f"{audit_trial:.3f} | {(audit_trial - plain_trial) * 1000:+.0f} ms ({(audit_trial / plain_trial - 1) * 100:+.1f} %) |")


if __name__ == "__main__":
    main()
