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
from collections.abc import Sequence
from typing import Any

from auditor.meters.base import EnergySource
from auditor.meters.cpu import CpuTimeSource, MemoryEstimateSource, ProcessTree
from auditor.meters.nvml import nvml_sources
from auditor.meters.sampler import Meter
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

    def begin(self, trial_id: str, gpu_ids: list[Any], job_id: str | None = None) -> list[str] | None:
        """Open ``trial_id``'s interval on the GPUs (indices) it was given; returns their keys,
        or None if its search (``job_id``) is refused (:meth:`refuse`): then it does not run."""
        with self.lock:
            if job_id in self.refused_jobs:
                return None
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
        closing its interval here: a worker killed with its trial never does). None at once for
        a trial that never began on this machine."""
        with self.lock:
            known = trial_id in self.intervals or trial_id in self.worker
        if not known:
            return None
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

    def stop(self) -> None:
        """Stop sampling."""
        self.meter.stop()


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
