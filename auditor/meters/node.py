"""Meters for searches whose trials run in other processes or on other machines.

A :class:`NodeMeter` samples every GPU of one machine; each trial opens an interval there on
the GPUs it was given, so trials sharing a GPU (fractional GPUs) share its energy and nothing
is counted twice. A cluster runs one per node; the framework only hosts it (the Ray plugin as
a detached actor). A :class:`TrialProcessMeter` meters one trial's own process (CPU time and
resident memory) in the worker that runs it.

Example:
    >>> from auditor.meters.simulated import SimulatedGpuSource
    >>> node = NodeMeter("node-1", [SimulatedGpuSource.from_spec("1x300")])
    >>> node.begin("trial-1", [0])
    ['gpu:SIM-0']
    >>> node.end("trial-1", {"finished": True})
    >>> final = node.final("trial-1")
    >>> final["node_id"], final["worker"]["finished"], final["gpu_energy_j"] >= 0
    ('node-1', True, True)
    >>> node.stop()
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from auditor.meters.base import EnergySource, worst_method
from auditor.meters.cpu import CpuTimeSource, MemoryEstimateSource, ProcessTree
from auditor.meters.nvml import nvml_sources
from auditor.meters.sampler import Meter
from auditor.meters.session import SessionProcesses
from auditor.meters.simulated import simulated_gpus_from_environment

logger = logging.getLogger("auditor")

WORKER_GRACE_S = 2.0  # how long a request for a trial's final figures waits for its worker


def node_gpu_sources() -> list[EnergySource]:
    """Every GPU of this machine, whatever ``CUDA_VISIBLE_DEVICES`` says (a process hosting the
    node meter is often given no GPU of its own)."""
    simulated = simulated_gpus_from_environment()
    if simulated is not None:
        return [simulated]
    sources, reason = nvml_sources(respect_cuda_visible_devices=False)
    if reason:
        logger.info("no GPU metered on this node (%s)", reason)
    return sources


class NodeMeter:
    """One per machine: samples its GPUs and measures each trial's interval on the GPUs it holds.

    Thread-safe: a host may call it from several threads at once, so that a request for a
    trial's final figures (:meth:`final`) can wait for that trial's worker to hand its own over
    (:meth:`end`).

    Args:
        node_id: the machine's name in the cluster, recorded with each trial's GPUs.
        sources: the GPU sources (default: every GPU of this machine).
    """

    def __init__(self, node_id: str, sources: Sequence[EnergySource] | None = None) -> None:
        self.node_id = node_id
        self.meter = Meter(list(sources) if sources is not None else node_gpu_sources()).start()
        self.intervals: dict[str, Any] = {}
        self.worker: dict[str, dict[str, Any]] = {}
        self.ended: dict[str, threading.Event] = {}
        self.refused_jobs: set[str] = set()
        self.job_settings: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.parts: dict[str, list[str]] = {}  # trial id -> its workers' intervals here (Ray Train)
        self.part_nodes: dict[str, set[str]] = {}  # trial id -> other nodes where its workers ran
        self.progress: dict[str, dict[str, dict[str, float]]] = {}  # trial id -> worker -> figures so far
        self.pids: dict[str, int] = {}  # interval -> the process running it
        self.session: SessionProcesses | None = None  # the search's processes outside trials
        self.overhead_meter: Meter | None = None  # (not `overhead`: the method of that name reads it)
        self.owners: dict[str, object] = {}  # experiment -> who takes the idle energy drawn for it
        self.job_experiment: dict[str, str] = {}  # job -> its experiment metered now
        self.experiment_job: dict[str, str] = {}
        self.job_gpus: dict[str, set[str]] = {}  # job -> the GPUs its trials held here

    def refuse(self, job_id: str, refused: bool = True) -> None:
        """Have the trials of ``job_id`` (a search whose budget was spent before it started) not
        run: their :meth:`begin` returns None. ``refused=False`` lifts it."""
        with self.lock:
            (self.refused_jobs.add if refused else self.refused_jobs.discard)(job_id)

    def settle(self, job_id: str, settings: dict[str, Any]) -> None:
        """Keep what the driver of ``job_id`` measures its trials with (its carbon model, and
        whether results carry the energy clock), for :meth:`settings`: each trial asks for it
        beside :meth:`begin`, so it costs the trial no round trip of its own."""
        with self.lock:
            self.job_settings[job_id] = dict(settings)

    def settings(self, job_id: str | None) -> dict[str, Any] | None:
        """What :meth:`settle` kept for ``job_id``, or None.

        Example:
            >>> node = NodeMeter("node-1", [])
            >>> node.settle("job-1", {"energy_clock": True})
            >>> node.settings("job-1"), node.settings("job-2")
            ({'energy_clock': True}, None)
            >>> node.stop()
        """
        with self.lock:
            known = self.job_settings.get(job_id) if job_id is not None else None
        return dict(known) if known is not None else None

    def _event(self, trial_id: str) -> threading.Event:
        with self.lock:
            return self.ended.setdefault(trial_id, threading.Event())

    def begin(self, trial_id: str, gpu_ids: list[Any], job_id: str | None = None, pid: int | None = None,
              part_of: str | None = None) -> list[str] | None:
        """Open ``trial_id``'s interval on the GPUs (indices) it was given; returns their keys,
        or None if its search (``job_id``) is refused (:meth:`refuse`): then it does not run.

        ``pid``: the process running it, whose time is then the trial's and not the session's
        overhead. ``part_of``: the trial this interval is a part of (a Ray Train worker of a Tune
        trial): :meth:`final` of that trial adds it."""
        with self.lock:
            if job_id in self.refused_jobs and part_of is None:
                return None
        gpus = [int(i) for i in gpu_ids] if gpu_ids else []
        known = {d.index for d in self.meter.devices.values() if d.is_gpu}
        keys, _ = self.meter.resolve_gpus([i for i in gpus if i in known])
        interval = self.meter.begin(gpus=keys)
        with self.lock:
            self.intervals[trial_id] = interval
            if part_of is not None:
                self.parts.setdefault(part_of, []).append(trial_id)
            if job_id is not None:
                self.job_gpus.setdefault(job_id, set()).update(keys)
            if pid is not None:
                self.pids[trial_id] = pid
        if pid is not None and self.session is not None:
            self.session.begin_trial(pid)
        return keys

    def note_part(self, trial_id: str, node_id: str) -> None:
        """A worker of ``trial_id`` runs on ``node_id``: :meth:`final` asks that node for it."""
        with self.lock:
            if node_id != self.node_id:
                self.part_nodes.setdefault(trial_id, set()).add(node_id)

    def report_progress(self, trial_id: str, part: str, figures: dict[str, float]) -> None:
        """A worker of ``trial_id`` (``part``) says what it drew so far (``gpu``, ``cpu`` and
        ``memory`` joules, ``gpu_seconds``): :meth:`snapshot` of the trial adds it."""
        with self.lock:
            self.progress.setdefault(trial_id, {})[part] = dict(figures)

    def snapshot(self, trial_id: str) -> dict[str, Any]:
        """The trial's GPU energy and GPU-seconds so far."""
        with self.lock:
            workers = list(self.progress.get(trial_id, {}).values())
        parts = {domain: sum(w.get(domain, 0.0) for w in workers) for domain in ("gpu", "cpu", "memory", "gpu_seconds")}
        interval = self.intervals.get(trial_id)
        if interval is None:
            return {"gpu_energy_j": 0.0, "gpu_seconds": 0.0, "workers": parts}
        now = interval.end or self.meter.clock()
        return {
            "gpu_energy_j": sum(interval.energy.values()),
            "gpu_seconds": sum(now - since for since in interval.devices.values()),
            "workers": parts,  # its Ray Train workers' figures so far, as they last said
        }

    def end(self, trial_id: str, worker: dict[str, Any]) -> None:
        """The trial ended on its worker: close its interval, keep the worker's final figures."""
        with self.lock:
            self.worker[trial_id] = worker
            interval = self.intervals.get(trial_id)
            pid = self.pids.pop(trial_id, None)
        if interval is not None and interval.end is None:
            self.meter.end(interval)
        if pid is not None and self.session is not None:
            self.session.end_trial(pid)
        self._event(trial_id).set()

    def final(self, trial_id: str, grace_s: float = WORKER_GRACE_S) -> dict[str, Any] | None:
        """The trial's final figures, once its worker handed them over (or after ``grace_s``,
        closing its interval here: a worker killed with its trial never does), with those of its
        workers (:meth:`begin` ``part_of``) added, here and on the machines :meth:`note_part`
        named (:meth:`remote_parts`). None at once for a trial that never began on this machine."""
        own = self._final_of(trial_id, grace_s)
        if own is None:  # its workers here, if any, are another node's trial's: left for it to ask
            return None
        parts = self.final_parts(trial_id, grace_s)
        with self.lock:
            elsewhere = sorted(self.part_nodes.pop(trial_id, set()))
            self.progress.pop(trial_id, None)
        if elsewhere:
            found = self.remote_parts(trial_id, elsewhere, grace_s)
            if found is None:
                own = {**own, "flags": [*own["flags"], "workers-missing"]}
            parts += found or []
        return with_parts(own, parts)

    def remote_parts(self, trial_id: str, nodes: list[str], grace_s: float) -> list[dict[str, Any]] | None:
        """The final figures of ``trial_id``'s workers on other ``nodes`` (their meters'
        :meth:`final_parts`), or None if they could not be asked. The host that connects the
        nodes' meters provides it (the Ray plugin); alone, a meter knows only its own machine."""
        logger.warning("trial %s had workers on nodes %s that this meter cannot ask", trial_id, ", ".join(nodes))
        return None

    def final_parts(self, trial_id: str, grace_s: float = WORKER_GRACE_S) -> list[dict[str, Any]]:
        """The final figures of each worker of ``trial_id`` that ran on this machine."""
        with self.lock:
            keys = self.parts.pop(trial_id, [])
        finals = [self._final_of(key, grace_s) for key in keys]
        return [final for final in finals if final is not None]

    def _final_of(self, key: str, grace_s: float) -> dict[str, Any] | None:
        with self.lock:
            known = key in self.intervals or key in self.worker
        if not known:
            return None
        self._event(key).wait(grace_s)
        with self.lock:
            interval = self.intervals.pop(key, None)
            worker = self.worker.pop(key, {})
            self.ended.pop(key, None)
            pid = self.pids.pop(key, None)
        if pid is not None and self.session is not None:
            self.session.end_trial(pid)
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

    # -- the search's overhead: its processes and held GPUs outside trials ---------------------

    def start_session(self, experiment: str, roots: list[int], foreign: Callable[[str], bool] | None = None,
                      job_id: str | None = None) -> None:
        """From now on, meter the processes of ``roots``' trees outside trials (the search's
        overhead on this machine) and the GPUs no trial holds, for ``experiment`` (of the search
        ``job_id``, whose trials :meth:`begin` names): :meth:`overhead` says what they drew.
        Each joule goes to one experiment, the newest; a new experiment of the same job ends
        the job's earlier one, if it never said so. ``foreign``: see
        :class:`~auditor.meters.session.SessionProcesses`."""
        with self.lock:
            if self.session is None:
                self.session = SessionProcesses(roots, foreign=foreign)
                self.overhead_meter = Meter([CpuTimeSource(self.session), MemoryEstimateSource(self.session)]).start()
            else:
                for pid in roots:
                    self.session.add_root(pid)
            if experiment in self.owners:
                return
            earlier = self.job_experiment.get(job_id) if job_id is not None else None
            owner = self.owners[experiment] = object()
            if job_id is not None:
                self.job_experiment[job_id] = experiment
                self.experiment_job[experiment] = job_id
                self.job_gpus.pop(job_id, None)  # the GPUs its trials hold from now on
        if earlier is not None:
            self._release(earlier)
        self.overhead_meter.own_idle(owner)  # type: ignore[union-attr]
        self.meter.own_idle(owner)

    def _release(self, experiment: str) -> None:
        with self.lock:
            owner = self.owners.pop(experiment, None)
            job_id = self.experiment_job.pop(experiment, None)
            if job_id is not None and self.job_experiment.get(job_id) == experiment:
                self.job_experiment.pop(job_id)
        if owner is not None:
            self.overhead_meter.release_idle(owner)  # type: ignore[union-attr]
            self.meter.release_idle(owner)

    def overhead(self, experiment: str, final: bool = False) -> dict[str, Any] | None:
        """What ``experiment``'s session drew on this machine outside its trials since
        :meth:`start_session`: joules and method per domain (``gpu``: the GPUs its trials held
        here, while none did). ``final``: the experiment is over, it takes no more. None for an
        experiment this meter never metered."""
        with self.lock:
            owner = self.owners.get(experiment)
            gpus = set(self.job_gpus.get(self.experiment_job.get(experiment, ""), set()))
        if owner is None or self.overhead_meter is None:
            return None
        self.overhead_meter.read_now()
        processes = self.overhead_meter.idle_of(owner)
        held = {key: joules for key, joules in self.meter.idle_of(owner).items() if key in gpus}
        if final:
            self._release(experiment)
        figures: dict[str, Any] = {"node_id": self.node_id}
        for domain in ("cpu", "memory"):
            joules = sum(j for key, j in processes.items() if key.startswith(domain + ":"))
            method = next(d.method for d in self.overhead_meter.devices.values() if d.domain == domain)
            figures[domain] = {"joules": max(0.0, joules), "method": method}
        if held:
            methods = {self.meter.devices[key].method for key in held}
            figures["gpu"] = {"joules": max(0.0, sum(held.values())), "method": worst_method(methods)}
        return figures

    def counter_deltas(self) -> dict[str, float]:
        """Per GPU, joules its counter rose since this meter started (for tests and checks)."""
        return self.meter.counter_deltas()

    def idle_joules(self) -> dict[str, float]:
        """Per GPU, joules no trial held."""
        return self.meter.idle_joules()

    def stop(self) -> None:
        """Stop sampling."""
        self.meter.stop()
        if self.overhead_meter is not None:
            self.overhead_meter.stop()


def with_parts(own: dict[str, Any], parts: list[dict[str, Any]]) -> dict[str, Any]:
    """A trial's final figures (:meth:`NodeMeter.final`) with those of its workers added: GPU
    energy and GPU-seconds summed, devices and flags joined, the workers' CPU and memory added to
    the trial process's, each domain's method the least exact one; ``workers`` lists each
    worker's node, process and figures.

    Example:
        >>> own = {"gpu_energy_j": 0.0, "gpu_energy_method": "none", "gpu_seconds": 0.0, "devices": [],
        ...        "flags": [], "worker": {"cpu": {"joules": 1.0, "method": "estimate-tdp"}, "finished": True}}
        >>> part = {"node_id": "n2", "gpu_energy_j": 5.0, "gpu_energy_method": "counter", "gpu_seconds": 2.0,
        ...         "devices": [{"key": "gpu:0", "node": "n2"}], "flags": [],
        ...         "worker": {"cpu": {"joules": 3.0, "method": "estimate-tdp"}, "pid": 7}}
        >>> merged = with_parts(own, [part])
        >>> merged["gpu_energy_j"], merged["gpu_seconds"], merged["worker"]["cpu"]["joules"], len(merged["workers"])
        (5.0, 2.0, 4.0, 1)
    """
    if not parts:
        return own
    merged = {**own, "devices": list(own.get("devices", [])), "flags": list(own.get("flags", []))}
    worker = {**own.get("worker", {})}
    gpu_methods = {own["gpu_energy_method"]} if own.get("gpu_energy_method", "none") != "none" else set()
    for part in parts:
        merged["gpu_energy_j"] = merged.get("gpu_energy_j", 0.0) + part["gpu_energy_j"]
        merged["gpu_seconds"] = merged.get("gpu_seconds", 0.0) + part["gpu_seconds"]
        merged["devices"] += part["devices"]
        merged["flags"] += [flag for flag in part["flags"] if flag not in merged["flags"]]
        if part["gpu_energy_method"] != "none":
            gpu_methods.add(part["gpu_energy_method"])
        for domain in ("cpu", "memory"):
            reading = part["worker"].get(domain)
            if reading is not None:
                mine = worker.get(domain, {"joules": 0.0, "method": reading["method"]})
                worker[domain] = {"joules": mine["joules"] + reading["joules"],
                                  "method": worst_method({mine["method"], reading["method"]})}
    merged["gpu_energy_method"] = worst_method(gpu_methods) if gpu_methods else "none"
    merged["worker"] = worker
    merged["workers"] = [{"node": part["node_id"], "pid": part["worker"].get("pid"), "gpu_energy_j": part["gpu_energy_j"],
                          "gpu_seconds": part["gpu_seconds"],
                          **{f"{d}_energy_j": part["worker"].get(d, {}).get("joules", 0.0) for d in ("cpu", "memory")}}
                         for part in parts]
    merged["flags"].append(f"ray-train-workers: {len(parts)}")
    return merged


class TrialProcessMeter:
    """One trial's own process (CPU time and resident memory), metered where it runs.

    Example:
        >>> trial = TrialProcessMeter()
        >>> sorted(trial.energy_so_far())
        ['cpu', 'memory']
        >>> sorted(trial.finish())
        ['cpu', 'memory']
    """

    def __init__(self, pid: int | None = None) -> None:
        tree = ProcessTree(pid or os.getpid())
        self.meter = Meter([CpuTimeSource(tree), MemoryEstimateSource(tree)]).start()
        self.interval = self.meter.begin(gpus=[])

    def energy_so_far(self) -> dict[str, float]:
        """Joules per domain (``cpu``, ``memory``) up to now."""
        self.meter.flush(max_reads=1)
        by_domain = {"cpu": 0.0, "memory": 0.0}
        for key, joules in self.interval.energy.items():
            by_domain[key.split(":")[0]] = by_domain.get(key.split(":")[0], 0.0) + joules
        return by_domain

    def finish(self) -> dict[str, dict[str, Any]]:
        """Close the interval and stop metering; the final joules and method per domain."""
        self.meter.end(self.interval)
        measurement = self.meter.measure(self.interval)
        self.meter.stop()
        return {domain: {"joules": reading.joules, "method": reading.method} for domain, reading in measurement.energy.items()}
