"""Ray Tune plugin: every trial audited on the node where it runs, and budgets that end the run.

Example::

    from ray import tune
    from auditor.integrations.ray_tune import AuditLoggerCallback, with_audit

    audit = AuditLoggerCallback(budget="50 kWh", region="US")
    tuner = tune.Tuner(with_audit(train_fn), param_space=...,
                       run_config=tune.RunConfig(callbacks=[audit], stop=audit.stopper))

How it works:

- Each node runs one meter, a Ray actor (``auditor-meter-<node id>``, no CPU reserved), that
  samples every GPU of the node. A trial wrapped by :func:`with_audit` opens an interval there on
  the GPUs Ray gave it (``ray.get_gpu_ids()``): trials sharing a GPU (fractional GPUs) share its
  energy, nothing is counted twice. The trial's own process meters its CPU and memory.
- Every reported result gets the figures so far under an ``auditor/`` prefix (TensorBoard, W&B
  and MLflow loggers show them too). When the trial ends, its final figures, including what was
  measured since its last report, go to the node's meter; the driver's callback collects them
  and writes the trial to the ledger, with the node it ran on.
- Trials killed by ``stop_all`` get no ``on_trial_complete`` from Ray: the callback closes them
  when the experiment ends, with their GPU energy up to then and CPU energy up to their last
  report.
- Budgets: the driver sums the ledger (every finished trial, of every worker and node) and the
  running trials' last figures. When a trial starts, the forecast of its cost is reserved in the
  ledger, in one transaction with the check, and released once the trial is written: trials
  running at once (in this experiment or another sharing the budget) are counted before they
  end, so the overshoot is bounded by the forecast's error; a trial that starts past the budget
  is stopped at its first report. ``stop-new`` ends the experiment through ``audit.stopper``'s
  ``stop_all`` (Ray cannot keep running trials while starting none, so they are stopped and
  marked stopped by the budget); ``hard`` also stops each running trial at its next report.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import threading
import time
from typing import Any

import ray
from ray.tune import Stopper, Trainable
from ray.tune.logger import LoggerCallback

from auditor.budget.limits import Action, Budget
from auditor.config import plugin_settings
from auditor.budget.guard import BudgetGuard
from auditor.ledger import EnergyReading, Ledger, TrialRecord, TrialState, Usage
from auditor.ledger.writer import LedgerWriter
from auditor.meters.base import EnergySource
from auditor.meters.cpu import CpuTimeSource, MemoryEstimateSource, ProcessTree
from auditor.meters.nvml import nvml_sources
from auditor.meters.sampler import Meter
from auditor.meters.simulated import simulated_gpus_from_environment
from auditor.search.recorder import HEARTBEAT_S
from auditor.search.safety import never_raise

logger = logging.getLogger("auditor")
NAMESPACE = "auditor"
PREFIX = "auditor/"
DOMAINS = ("gpu", "cpu", "memory")


# -- the node's meter ---------------------------------------------------------------------------


def _node_gpu_sources() -> list[EnergySource]:
    """Every GPU of this node (an actor without GPUs sees CUDA_VISIBLE_DEVICES empty: ignore it)."""
    simulated = simulated_gpus_from_environment()
    if simulated is not None:
        return [simulated]
    sources, reason = nvml_sources(respect_cuda_visible_devices=False)
    if reason:
        logger.info("auditor: no GPU metered on this node (%s)", reason)
    return sources


WORKER_GRACE_S = 2.0  # how long the driver's request for a trial's figures waits for its worker


@ray.remote(num_cpus=0, max_concurrency=16)
class NodeMeter:
    """One per node: samples the node's GPUs and measures each trial's interval on its GPUs.

    Its methods run in a small thread pool, so the driver's request for a trial's final figures
    can wait for that trial's worker to hand its own over.
    """

    def __init__(self) -> None:
        self.meter = Meter(_node_gpu_sources()).start()
        self.node_id = ray.get_runtime_context().get_node_id()
        self.intervals: dict[str, Any] = {}
        self.worker: dict[str, dict[str, Any]] = {}
        self.ended: dict[str, threading.Event] = {}
        self.lock = threading.Lock()

    def _event(self, trial_id: str) -> threading.Event:
        with self.lock:
            return self.ended.setdefault(trial_id, threading.Event())

    def begin(self, trial_id: str, gpu_ids: list[Any]) -> list[str]:
        """Open ``trial_id``'s interval on the GPUs Ray gave it; returns their keys."""
        gpus = [int(i) for i in gpu_ids] if gpu_ids else []
        known = {d.index for d in self.meter.devices.values() if d.is_gpu}
        keys, _ = self.meter.resolve_gpus([i for i in gpus if i in known])
        interval = self.meter.begin(gpus=keys)
        with self.lock:
            self.intervals[trial_id] = interval
        return keys

    def snapshot(self, trial_id: str) -> dict[str, float]:
        """The trial's GPU energy and GPU-seconds so far."""
        interval = self.intervals.get(trial_id)
        if interval is None:
            return {"gpu_energy_j": 0.0, "gpu_seconds": 0.0}
        now = interval.end or self.meter.clock()
        return {
            "gpu_energy_j": sum(interval.energy.values()),
            "gpu_seconds": sum(now - since for since in interval.devices.values()),
        }

    def end(self, trial_id: str, worker: dict[str, Any]) -> None:
        """The trial ended on its worker: close its interval, keep the worker's final figures."""
        with self.lock:
            self.worker[trial_id] = worker
            interval = self.intervals.get(trial_id)
        if interval is not None and interval.end is None:
            self.meter.end(interval)
        self._event(trial_id).set()

    def final(self, trial_id: str, grace_s: float = WORKER_GRACE_S) -> dict[str, Any] | None:
        """The trial's final figures, once its worker handed them over (or after ``grace_s``,
        closing its interval here: a worker killed with its trial never does)."""
        self._event(trial_id).wait(grace_s)
        with self.lock:
            interval = self.intervals.pop(trial_id, None)
            worker = self.worker.pop(trial_id, {})
            self.ended.pop(trial_id, None)
        if interval is None:
            return None
        closed_here = interval.end is None
        if closed_here:
            self.meter.end(interval)
        measurement = self.meter.measure(interval)
        flags = list(measurement.flags) + (["closed-at-experiment-end"] if closed_here else [])
        gpu = measurement.energy.get("gpu")
        return {
            "node_id": self.node_id,
            "gpu_energy_j": gpu.joules if gpu else 0.0,
            "gpu_energy_method": gpu.method if gpu else "none",
            "gpu_seconds": measurement.gpu_seconds,
            "devices": [{"key": d.key, "index": d.index, "model": d.name, "node": self.node_id} for d in measurement.gpus],
            "flags": flags,
            "worker": worker,
        }

    def counter_deltas(self) -> dict[str, float]:
        """Per GPU, joules its counter rose since this meter started (for tests and checks)."""
        return self.meter.counter_deltas()

    def idle_joules(self) -> dict[str, float]:
        """Per GPU, joules no trial held."""
        return self.meter.idle_joules()


def node_meter(node_id: str | None = None) -> Any:
    """The meter actor of ``node_id`` (default: this node), started on it if needed.

    The meters are detached actors: one started by a trial's worker must outlive that worker,
    and a later experiment on the same cluster reuses them. The driver's callback starts one on
    every node when the experiment starts. ``ray.kill`` one (or shut Ray down) to stop it.
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node_id = node_id or ray.get_runtime_context().get_node_id()
    try:
        return ray.get_actor(f"auditor-meter-{node_id}", namespace=NAMESPACE)
    except ValueError:
        pass
    return NodeMeter.options(
        name=f"auditor-meter-{node_id}",
        namespace=NAMESPACE,
        get_if_exists=True,
        lifetime="detached",
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    ).remote()


# -- the worker side ------------------------------------------------------------------------------


class _TrialAudit:
    """What runs beside one trial in its worker process."""

    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id
        self.node_id = ray.get_runtime_context().get_node_id()
        self.actor = node_meter(self.node_id)
        self.gpus = ray.get(self.actor.begin.remote(trial_id, list(ray.get_gpu_ids())))
        tree = ProcessTree(os.getpid())
        self.meter = Meter([CpuTimeSource(tree), MemoryEstimateSource(tree)]).start()
        self.interval = self.meter.begin(gpus=[])
        self.finished = False

    def metrics(self) -> dict[str, Any]:
        """The figures so far, under the ``auditor/`` prefix."""
        self.meter.flush(max_reads=1)
        gpu = ray.get(self.actor.snapshot.remote(self.trial_id))
        local = {key.split(":")[0]: joules for key, joules in self.interval.energy.items()}
        figures = {
            "gpu_energy_j": gpu["gpu_energy_j"],
            "cpu_energy_j": local.get("cpu", 0.0),
            "memory_energy_j": local.get("memory", 0.0),
            "gpu_seconds": gpu["gpu_seconds"],
        }
        figures["energy_kwh"] = (figures["gpu_energy_j"] + figures["cpu_energy_j"] + figures["memory_energy_j"]) / 3.6e6
        return {**{PREFIX + k: v for k, v in figures.items()}, PREFIX + "node_id": self.node_id}

    def finish(self, finished: bool) -> None:
        """The trial's code returned (``finished``) or raised: hand its final figures over."""
        if self.finished:
            return
        self.finished = True
        self.meter.end(self.interval)
        measurement = self.meter.measure(self.interval)
        self.meter.stop()
        worker = {
            domain: {"joules": reading.joules, "method": reading.method}
            for domain, reading in measurement.energy.items()
        }
        worker["finished"] = finished
        worker["pid"] = os.getpid()
        try:
            ray.get(self.actor.end.remote(self.trial_id, worker), timeout=30)
        except Exception as exc:  # noqa: BLE001 - the trial's own outcome matters more
            logger.warning("auditor: final figures of trial %s not handed over: %s", self.trial_id, exc)


def _patch_report(audit: _TrialAudit) -> None:
    """Add the figures to every ``tune.report`` of this trial."""
    from ray.train._internal.session import get_session

    session = get_session()
    if session is None or getattr(session, "_auditor_patched", False):
        return
    original = session.report

    def report(metrics: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        try:
            metrics = {**metrics, **audit.metrics()}
        except Exception as exc:  # noqa: BLE001 - a report without figures beats no report
            logger.warning("auditor: figures not added to the result: %s", exc)
        return original(metrics, *args, **kwargs)

    session.report = report
    session._auditor_patched = True


def with_audit(trainable: Any) -> Any:
    """Meter a Ray Tune trainable (a function or a ``tune.Trainable`` class) where it runs.

    The GPUs Ray assigned to the trial are metered by the node's meter, the trial's process by
    its own; every reported result gets the figures under ``auditor/``.
    """
    if isinstance(trainable, type) and issubclass(trainable, Trainable):
        return _audited_class(trainable)

    @functools.wraps(trainable)
    def audited(config: dict[str, Any]) -> Any:
        from ray import tune

        audit = _TrialAudit(tune.get_context().get_trial_id())
        _patch_report(audit)
        try:
            value = trainable(config)
        except BaseException:
            audit.finish(finished=False)
            raise
        audit.finish(finished=True)
        return value

    return audited


def _audited_class(cls: type[Trainable]) -> type[Trainable]:
    class Audited(cls):  # type: ignore[valid-type, misc]
        def setup(self, config: dict[str, Any]) -> None:
            self._auditor = _TrialAudit(self.trial_id)
            super().setup(config)

        def step(self) -> dict[str, Any]:
            result = super().step()
            return {**result, **self._auditor.metrics()}

        def cleanup(self) -> None:
            try:
                super().cleanup()
            finally:
                self._auditor.finish(finished=True)

    Audited.__name__ = Audited.__qualname__ = cls.__name__
    return Audited


# -- the driver side ------------------------------------------------------------------------------


class _AuditStopper(Stopper):
    """Stops a trial once a hard budget is spent, and the experiment once any budget is."""

    def __init__(self, audit: AuditLoggerCallback) -> None:
        self._audit = audit

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if self._audit.hard_stopped:
            self._audit.stopped_by_budget_ids.add(trial_id)
            return True
        return False

    def stop_all(self) -> bool:
        return self._audit.stopped_by_budget


def _figures(result: dict[str, Any]) -> Usage:
    joules = sum(float(result.get(f"{PREFIX}{d}_energy_j", 0.0)) for d in DOMAINS)
    return Usage(joules / 3.6e6, float(result.get(PREFIX + "gpu_seconds", 0.0)) / 3600, 1)


def _jsonable(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (int, float, str, bool, type(None))) else json.dumps(v, default=str) for k, v in config.items()}


class AuditLoggerCallback(LoggerCallback):
    """A Ray Tune callback that records every trial's GPU-hours and energy and enforces a budget.

    Takes the options of the Optuna plugin: ``ledger``, ``budget``, ``scope``, ``mode``,
    ``region``, ``pue``, ``sweep`` (default: the experiment's name), ``price_per_gpu_hour``,
    ``price_per_kwh``, ``reserve``, ``fail``. ``audit.stopper`` is the :class:`ray.tune.Stopper`
    sharing its tally.
    """

    def __init__(
        self,
        *,
        ledger: str | None = None,
        budget: str | Budget | None = None,
        scope: str | None = None,
        mode: str | None = None,
        region: str | None = None,
        pue: float | None = None,
        sweep: str | None = None,
        price_per_gpu_hour: float | None = None,
        price_per_kwh: float | None = None,
        reserve: bool = True,
        fail: str | None = None,
    ) -> None:
        config = plugin_settings(
            ledger=ledger, budget=budget, scope=scope, mode=mode, region=region, pue=pue,
            price_per_gpu_hour=price_per_gpu_hour, price_per_kwh=price_per_kwh, fail=fail,
        )
        self.model = config.model
        self.budget = config.budget
        self.ledger_target = config.ledger
        self.ledger_timeout = config.ledger_timeout
        self.spool_dir = config.spool_dir
        self.reserve = reserve
        self.sweep = sweep
        self.writer: LedgerWriter | None = None
        self.guard: BudgetGuard | None = None
        self.stopper = _AuditStopper(self)
        self.stopped_by_budget = False
        self.hard_stopped = False
        self.stopped_by_budget_ids: set[str] = set()
        self._latest: dict[str, dict[str, Any]] = {}
        self._started: dict[str, float] = {}
        self._recorded: set[str] = set()
        self._closing: dict[str, dict[str, Any]] = {}
        self._beats: dict[str, float] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles callbacks with the experiment's state: leave the connection and lock out."""
        state = dict(self.__dict__)
        state.update(writer=None, guard=None, _lock=None, _closing={})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @never_raise
    def setup(self, **info: Any) -> None:
        """Start a meter on every node now, owned by the driver."""
        super().setup(**info)
        self._start_node_meters()

    def _start_node_meters(self) -> None:
        try:
            meters = [node_meter(node["NodeID"]) for node in ray.nodes() if node.get("Alive")]
            ray.get([meter.snapshot.remote("") for meter in meters], timeout=60)
        except Exception as exc:  # noqa: BLE001 - trials then start their node's meter themselves
            logger.warning("auditor: node meters not started from the driver: %s", exc)

    @property
    def ledger(self) -> Ledger | None:
        """The ledger, once a trial started and while it can be opened."""
        return self.writer.ledger if self.writer is not None else None

    def _open(self, trial: Any) -> None:
        if self.writer is None:
            self.sweep = self.sweep or trial.experiment_dir_name
            self.writer = LedgerWriter(self.ledger_target, self.sweep, "ray", timeout_s=self.ledger_timeout,
                                       spool_dir=self.spool_dir)
        if self.budget is not None and self.guard is None:
            self.guard = BudgetGuard(self.budget, self.model, None, self.sweep)
        if self.guard is not None and self.guard.ledger is None:
            self.guard.ledger = self.ledger

    def _holder(self, trial_id: str) -> str:
        return f"{socket.gethostname()}:{os.getpid()}:ray:{self.sweep}:{trial_id}"

    @never_raise
    def log_trial_start(self, trial: Any) -> None:
        self._open(trial)
        self._started.setdefault(trial.trial_id, time.time())
        self._heartbeat(trial, force=True)
        self._collect()
        if self.guard is not None and self.reserve and not self.stopped_by_budget:
            decision = self.guard.decide(after=f"the start of trial {trial.trial_id}", holder=self._holder(trial.trial_id))
            self._act_on(decision)
            if decision.action.stops:
                self.stopped_by_budget_ids.add(trial.trial_id)  # started past the budget: stopped at its first report

    def _act_on(self, decision: Any) -> None:
        if decision.action.stops:
            self.stopped_by_budget = True
            self.hard_stopped = self.hard_stopped or decision.action is Action.STOP_ALL

    def _heartbeat(self, trial: Any, force: bool = False) -> None:
        """The trial's row as ``running`` with its last figures, at its start and every few
        seconds: a driver killed mid-experiment leaves its running trials in the ledger."""
        now = time.time()
        if trial.trial_id in self._recorded or (not force and now - self._beats.get(trial.trial_id, 0.0) < HEARTBEAT_S):
            return
        self._beats[trial.trial_id] = now
        latest = self._latest.get(trial.trial_id, {})
        energy = {d: EnergyReading(float(latest[f"{PREFIX}{d}_energy_j"]), "counter" if d == "gpu" else "estimate")
                  for d in DOMAINS if f"{PREFIX}{d}_energy_j" in latest}
        self.writer.write([TrialRecord(  # type: ignore[union-attr]
            sweep=self.sweep, trial_key=trial.trial_id,  # type: ignore[arg-type]
            name=str(getattr(trial, "experiment_tag", "") or trial.trial_id)[:255], state=TrialState.RUNNING,
            start_time=self._started.get(trial.trial_id, now), end_time=now, params=_jsonable(dict(trial.config or {})),
            gpu_seconds=float(latest.get(PREFIX + "gpu_seconds", 0.0)), energy=energy, flags=["heartbeat"],
        )])

    @never_raise
    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        self._open(trial)
        self._started.setdefault(trial.trial_id, time.time())
        self._latest[trial.trial_id] = dict(result)
        self._heartbeat(trial)
        self._collect()
        if self.guard is None:
            return
        pending = [_figures(r) for key, r in self._latest.items() if key not in self._recorded]
        held = [r for r in self.writer.held if r.state is not TrialState.RUNNING] if self.writer else []  # a ledger fault
        pending += [Usage(r.energy_kwh, r.gpu_hours, 1) for r in held]
        usage = Usage(sum(u.energy_kwh for u in pending), sum(u.gpu_hours for u in pending), len(pending))
        self._act_on(self.guard.decide(usage, after=f"a result of trial {trial.trial_id}"))

    @never_raise
    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        self._open(trial)
        self._close(trial, failed=failed, at_end=False)
        self._collect()

    @never_raise
    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        for trial in trials:
            if trial.trial_id in self._started and trial.trial_id not in self._closing:
                self._close(trial, failed=False, at_end=True)
        self._collect(wait_s=60.0)
        if self.writer is not None:
            self.writer.close()

    # Ray holds a trial's worker in its last report until the driver's callbacks return, so a
    # trial's final figures are asked for here without waiting, and written once they come.

    def _close(self, trial: Any, failed: bool, at_end: bool) -> None:
        if trial.trial_id in self._closing:
            return
        latest = self._latest.get(trial.trial_id, {})
        node_id = latest.get(PREFIX + "node_id")
        ref = None
        if node_id:
            try:
                ref = node_meter(node_id).final.remote(trial.trial_id)
            except Exception as exc:  # noqa: BLE001 - fall back on the last report's figures
                logger.warning("auditor: final figures of trial %s not asked for: %s", trial.trial_id, exc)
        self._closing[trial.trial_id] = {
            "ref": ref, "failed": failed, "at_end": at_end, "end": time.time(), "latest": latest, "node_id": node_id,
            "config": dict(trial.config or {}), "tag": str(getattr(trial, "experiment_tag", "") or trial.trial_id),
            "by_budget": trial.trial_id in self.stopped_by_budget_ids or (at_end and self.stopped_by_budget),
        }

    def _collect(self, wait_s: float = 0.0) -> None:
        waiting = {trial_id: c for trial_id, c in self._closing.items() if trial_id not in self._recorded}
        refs = [c["ref"] for c in waiting.values() if c["ref"] is not None]
        ready: set[Any] = set(refs)
        if refs:
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=wait_s)
            ready = set(done)
        for trial_id, closing in waiting.items():
            if closing["ref"] is not None and closing["ref"] not in ready:
                continue
            final = None
            if closing["ref"] is not None:
                try:
                    final = ray.get(closing["ref"])
                except Exception as exc:  # noqa: BLE001
                    logger.warning("auditor: final figures of trial %s not collected: %s", trial_id, exc)
            self._record(trial_id, closing, final)
        if wait_s and any(c["ref"] is not None and t not in self._recorded for t, c in self._closing.items()):
            for trial_id, closing in self._closing.items():
                if trial_id not in self._recorded:
                    self._record(trial_id, closing, None)

    def _record(self, trial_id: str, closing: dict[str, Any], final: dict[str, Any] | None) -> None:
        with self._lock:
            if trial_id in self._recorded:
                return
            self._recorded.add(trial_id)
        latest, node_id, by_budget = closing["latest"], closing["node_id"], closing["by_budget"]
        worker = (final or {}).get("worker", {})
        if closing["failed"]:
            state = TrialState.FAILED
        elif by_budget or closing["at_end"] or worker.get("finished") is False:
            state = TrialState.STOPPED
        else:
            state = TrialState.COMPLETE
        flags = list((final or {}).get("flags", []))
        energy: dict[str, EnergyReading] = {}
        if final is not None:
            energy["gpu"] = EnergyReading(final["gpu_energy_j"], final["gpu_energy_method"])
        for domain in ("cpu", "memory"):
            if domain in worker:
                energy[domain] = EnergyReading(worker[domain]["joules"], worker[domain]["method"])
            elif PREFIX + f"{domain}_energy_j" in latest:
                method = "estimate-tdp" if domain == "cpu" else "estimate"
                energy[domain] = EnergyReading(float(latest[PREFIX + f"{domain}_energy_j"]), method)
        if final is None:
            flags.append("energy-up-to-last-report" if latest else "energy-missing")
            if PREFIX + "gpu_energy_j" in latest:
                energy["gpu"] = EnergyReading(float(latest[PREFIX + "gpu_energy_j"]), "counter")
        if by_budget:
            flags.append("stopped-by-budget")
        record = TrialRecord(
            sweep=self.sweep,  # type: ignore[arg-type]
            trial_key=trial_id,
            name=closing["tag"][:255],
            state=state,
            start_time=self._started.get(trial_id, closing["end"]),
            end_time=closing["end"],
            params=_jsonable(closing["config"]),
            host=str(latest.get("hostname") or latest.get("node_ip") or "unknown"),
            devices=(final or {}).get("devices", []),
            gpu_seconds=float((final or {}).get("gpu_seconds", latest.get(PREFIX + "gpu_seconds", 0.0))),
            energy=energy,
            flags=[f"node: {node_id}", *flags] if node_id else flags,
            stopped_by_budget=by_budget,
        )
        self.writer.write([record])  # type: ignore[union-attr] - held back (and spooled) if the ledger refuses it
        if self.guard is not None:
            missing = "energy-missing" in flags
            self.guard.observe(Usage(record.energy_kwh, record.gpu_hours, 1), missing="not measured" if missing else None)
            if self.reserve:
                self._release(trial_id)

    @never_raise
    def _release(self, trial_id: str) -> None:
        """The trial's real cost is written (or held back, and counted as pending): its
        reservation goes."""
        if self.guard is not None and self.guard.ledger is not None:
            self.guard.release(self._holder(trial_id))


__all__ = ["AuditLoggerCallback", "NodeMeter", "node_meter", "with_audit"]
