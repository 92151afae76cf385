"""Ray Tune plugin, the workers' side: the node's meter hosted as a Ray actor, and
:func:`with_audit`, which meters a trainable where it runs and adds the figures so far to each
result it reports. The driver's side is :mod:`auditor.integrations.ray_tune`.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from typing import Any

import ray
from ray.tune import Trainable

from auditor.meters import node as node_meters
from auditor.search.figures import result_metrics

logger = logging.getLogger("auditor")
NAMESPACE = "auditor"
FIGURES_S = 0.1  # results get the figures at most this often: NVML's energy counter steps every 100 ms


# -- the node's meter, hosted by Ray ------------------------------------------------------------


@ray.remote(num_cpus=0, max_concurrency=16)
class NodeMeter(node_meters.NodeMeter):
    """The node's meter (:class:`auditor.meters.node.NodeMeter`) as a Ray actor. Its methods
    run in a small thread pool, so the driver's request for a trial's final figures can wait
    for that trial's worker to hand its own over."""

    def __init__(self) -> None:
        super().__init__(ray.get_runtime_context().get_node_id())


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


def start_node_meters() -> list[str]:
    """Start a meter on every live node of the cluster, without waiting for them (a trial's
    first call waits for its own); returns the nodes' ids. Never raises: trials start their
    node's meter themselves if this fails."""
    try:
        nodes = [node["NodeID"] for node in ray.nodes() if node.get("Alive")]
        for node_id in nodes:
            node_meter(node_id)
        return nodes
    except Exception as exc:  # noqa: BLE001
        logger.warning("auditor: node meters not started from the driver: %s", exc)
        return []


# -- the worker side ------------------------------------------------------------------------------


class _TrialAudit:
    """What runs beside one trial in its worker process: its interval on the node's meter, and
    its own process's meter.

    Results get the figures at most every :data:`FIGURES_S` (the first result always; the
    driver's budget tally carries them over to the results between). They
    cost no round trip: GPU-seconds are counted here (the GPUs the node's meter gave the trial
    x the time since it began), CPU and memory are read here, and the GPU joules are the node
    meter's latest answer, asked again without waiting once it came: about 0.1 s behind. The
    trial's final figures, which the ledger keeps, come from the node's meter when it ends.
    """

    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id
        self.node_id = ray.get_runtime_context().get_node_id()
        self.actor = node_meter(self.node_id)
        job = ray.get_runtime_context().get_job_id()
        self.gpus = ray.get(self.actor.begin.remote(trial_id, list(ray.get_gpu_ids()), job))
        self.began = time.monotonic()
        self.refused = self.gpus is None  # its search's budget was spent before it started
        if self.refused:
            logger.warning("auditor: trial %s not run: the budget of its search was spent before it started", trial_id)
        self.process = node_meters.TrialProcessMeter()
        self.finished = self.refused
        self.gpu_joules = 0.0
        self._asked: Any = self.actor.snapshot.remote(trial_id)
        self._figures_at = -math.inf

    def metrics(self) -> dict[str, Any]:
        """The figures so far, under the ``auditor/`` prefix; none if the last were given less
        than :data:`FIGURES_S` ago."""
        now = time.monotonic()
        if now - self._figures_at < FIGURES_S:
            return {}
        self._figures_at = now
        self._gpu_answer()
        joules = {"gpu": self.gpu_joules, **self.process.energy_so_far()}
        return result_metrics(joules, len(self.gpus or []) * (now - self.began), self.node_id)

    def _gpu_answer(self) -> None:
        """Take the node meter's answer if it came, and ask again."""
        asked = self._asked
        if asked is not None:
            if not ray.wait([asked], timeout=0)[0]:
                return
            self._asked = None  # a failed answer is not waited for again
            self.gpu_joules = max(self.gpu_joules, float(ray.get(asked)["gpu_energy_j"]))
        self._asked = self.actor.snapshot.remote(self.trial_id)

    def finish(self, finished: bool) -> None:
        """The trial's code returned (``finished``) or raised: hand its final figures over."""
        if self.finished:
            return
        self.finished = True
        worker: dict[str, Any] = {**self.process.finish(), "finished": finished, "pid": os.getpid()}
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
        if audit.refused:
            return None
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
            if not self._auditor.refused:
                super().setup(config)

        def step(self) -> dict[str, Any]:
            if self._auditor.refused:
                return {"done": True}
            result = super().step()
            return {**result, **self._auditor.metrics()}

        def cleanup(self) -> None:
            try:
                if not self._auditor.refused:
                    super().cleanup()
            finally:
                self._auditor.finish(finished=True)

    Audited.__name__ = Audited.__qualname__ = cls.__name__
    return Audited


__all__ = ["NodeMeter", "node_meter", "start_node_meters", "with_audit"]
