"""Ray Tune plugin, the workers' side: the node's meter hosted as a Ray actor, and
:func:`with_audit`, which meters a trainable where it runs and adds the figures so far to each
result it reports. The driver's side is :mod:`auditor.integrations.ray_tune`.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import ray
from auditor.integrations.ray_tune_trial import _TrialAudit, _WorkerAudit, running_trial, usage
from ray.tune import Trainable

from auditor.meters import node as node_meters

logger = logging.getLogger("auditor")
NAMESPACE = "auditor"


# -- the node's meter, hosted by Ray ------------------------------------------------------------


@ray.remote(num_cpus=0, max_concurrency=16)
class NodeMeter(node_meters.NodeMeter):
    """The node's meter (:class:`auditor.meters.node.NodeMeter`) as a Ray actor. Its methods
    run in a small thread pool, so the driver's request for a trial's final figures can wait
    for that trial's worker to hand its own over."""

    def __init__(self) -> None:
        super().__init__(ray.get_runtime_context().get_node_id())

    def settle(self, job_id: str, settings: dict[str, Any]) -> None:
        """Keep the driver's settings (:meth:`auditor.meters.node.NodeMeter.settle`) and meter
        the experiment's overhead on this node from now on: the raylet's process tree (this
        actor's parent: every Ray worker of the node), and the driver's where it runs here."""
        super().settle(job_id, settings)
        roots = [os.getppid()]
        if settings.get("driver_node") == self.node_id and settings.get("driver_pid"):
            roots.append(int(settings["driver_pid"]))
        try:
            self.start_session(str(settings.get("experiment") or job_id), roots, foreign=_another_raylet, job_id=job_id)
        except Exception as exc:  # noqa: BLE001 - the trials are metered all the same
            logger.warning("the experiment's overhead on node %s is not metered: %s", self.node_id, exc)

    def remote_parts(self, trial_id: str, nodes: list[str], grace_s: float) -> list[dict[str, Any]] | None:
        """The final figures of the trial's Ray Train workers on other nodes, asked of those
        nodes' meters (30 s at most); None if they did not answer."""
        try:
            answers = ray.get([node_meter(node).final_parts.remote(trial_id, grace_s) for node in nodes], timeout=30)
        except Exception as exc:  # noqa: BLE001 - the trials are metered all the same
            logger.warning("figures of trial %s's workers on other nodes not collected: %s", trial_id, exc)
            return None
        return [part for answer in answers for part in answer]


def _another_raylet(name: str) -> bool:
    """A raylet not at a session's root is another node's (a machine running several nodes)."""
    return name == "raylet"


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
        logger.warning("node meters not started from the driver: %s", exc)
        return []


def tell_node_meters(nodes: list[str], method: str, *args: Any) -> None:
    """Call ``method`` of the meter of each of ``nodes`` with this driver's job id and ``args``,
    and wait for them all (30 s at most): what they keep is there before any trial begins."""
    job = ray.get_runtime_context().get_job_id()
    ray.get([getattr(node_meter(node), method).remote(job, *args) for node in nodes], timeout=30)


# -- the worker side ------------------------------------------------------------------------------


def _patch_report(audit: _TrialAudit) -> None:
    """Add the figures to every ``tune.report`` of this trial.

    Ray documents no hook on a function trainable's results, so this wraps the ``report`` of
    the trial's session (``ray.train._internal.session``), the one private route the plugin
    takes. Where a Ray version moved it, results go on without ``auditor/`` figures, with one
    warning saying so (``usage()``, the ledger and the budget do not need them), and
    ``tests/integrations_tests/test_ray_tune.py`` fails that day, as its tests read the figures
    from Ray's own results."""
    try:
        from ray.train._internal.session import get_session

        session = get_session()
        original = session.report if session is not None else None
    except (ImportError, AttributeError) as exc:
        logger.warning("results of trial %s carry no auditor/ figures: this Ray (%s) has no session to add them to "
                       "(%s); usage(), the ledger and the budget are unaffected", audit.trial_id, ray.__version__, exc)
        return
    if session is None or getattr(session, "_auditor_patched", False) or original is None:
        return

    def report(metrics: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        return original({**metrics, **_figures(audit)}, *args, **kwargs)

    session.report = report
    session._auditor_patched = True


def _figures(audit: _TrialAudit) -> dict[str, Any]:
    try:
        return audit.metrics()
    except Exception as exc:  # noqa: BLE001
        logger.warning("figures not added to the result: %s", exc)
        return {}


def with_audit(trainable: Any, *, energy_clock: bool = False) -> Any:
    """Meter a Ray Tune trainable (a function or a ``tune.Trainable`` class) where it runs.

    The GPUs Ray assigned to the trial are metered by the node's meter, the trial's process by
    its own; reported results get the figures so far under ``auditor/`` (the first, then at
    most every 0.1 s), and :func:`usage` inside the trainable gives them as a ``Footprint``.

    A function wrapped by it and run as a Ray Train trainer's per-worker loop, by a trainer the
    audited trial builds (``TorchTrainer(with_audit(loop), ...).fit()`` inside the trainable), is
    charged to that trial: each worker's GPUs through its own node's meter, its process's CPU
    and memory, added once to the trial's figures. The trial is noted as the loop is pickled in
    the trial's thread, so a loop decorated once at module level works too.

    Args:
        trainable: a function trainable (or a Ray Train loop) or a ``tune.Trainable`` class.
        energy_clock: put ``auditor/energy_j``, the trial's joules so far (GPU, CPU and memory,
            never decreasing), on every result, so that a scheduler can count in it:
            ``ASHAScheduler(time_attr="auditor/energy_j")``. Off by default, as each key costs
            every result a little in Ray's loggers; such a scheduler in ``tune.TuneConfig``
            turns it on by itself (the callback finds it there).

    Example::

        asha = ASHAScheduler(time_attr="auditor/energy_j", metric="loss", mode="min",
                             max_t=20_000, grace_period=2_000)           # rungs in joules
        tuner = tune.Tuner(with_audit(train_fn, energy_clock=True), tune_config=tune.TuneConfig(scheduler=asha),
                           run_config=tune.RunConfig(callbacks=[AuditLoggerCallback()]))
    """
    if isinstance(trainable, type) and issubclass(trainable, Trainable):
        return _audited_class(trainable, energy_clock)
    binding = _TrialBinding()

    @functools.wraps(trainable, assigned=("__name__", "__doc__"))  # a qualname of ours: pickled by value, binding too
    def audited(*args: Any, **kwargs: Any) -> Any:
        trial_id = _tune_trial_id()
        if trial_id is None:
            return _run_worker(trainable, binding, args, kwargs)
        audit = _TrialAudit(trial_id, node_meter(), energy_clock)
        if audit.refused:
            return None
        _patch_report(audit)
        return _metered(audit, trainable, args, kwargs)

    return audited


def _metered(audit: Any, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run ``fn``; its audit hands its figures over whether it returns or raises."""
    try:
        value = fn(*args, **kwargs)
    except BaseException:
        audit.finish(finished=False)
        raise
    audit.finish(finished=True)
    return value


class _TrialBinding:
    """The audited trial a function wrapped by :func:`with_audit` belongs to when it runs as a
    Ray Train loop. Found as it is pickled: a Tune trial hands its trainer's loop to the workers
    pickled, in the trial's own thread, where :func:`running_trial` names the trial."""

    def __init__(self, trial: tuple[str, str] | None = None) -> None:
        self.trial = trial

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _TrialBinding, (self.trial or running_trial(),)


def _tune_trial_id() -> str | None:
    """The Tune trial this thread runs, or None (a Ray Train worker, or no Ray Tune at all)."""
    try:
        from ray.tune import get_context

        return get_context().get_trial_id() or None
    except Exception:  # noqa: BLE001 - outside a Tune session
        return None


_UNBOUND_WARNED: list[bool] = []


def _run_worker(loop: Any, binding: _TrialBinding, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run a Ray Train worker's loop, charged to the Tune trial that started its trainer."""
    if binding.trial is None:
        if not _UNBOUND_WARNED:
            _UNBOUND_WARNED.append(True)
            logger.warning("with_audit(%s) runs outside an audited Ray Tune trial: this process is not charged to any "
                           "trial (wrap the Tune trainable with with_audit too, and build the trainer inside it)",
                           getattr(loop, "__name__", "loop"))
        return loop(*args, **kwargs)
    trial_id, trial_node = binding.trial
    try:
        audit = _WorkerAudit(trial_id, trial_node, node_meter(), node_meter(trial_node))
    except Exception as exc:  # noqa: BLE001
        logger.warning("a Ray Train worker of trial %s is not metered: %s", trial_id, exc)
        return loop(*args, **kwargs)
    return _metered(audit, loop, args, kwargs)


def _audited_class(cls: type[Trainable], energy_clock: bool) -> type[Trainable]:
    class Audited(cls):  # type: ignore[valid-type, misc]
        def setup(self, config: dict[str, Any]) -> None:
            self._auditor = _TrialAudit(self.trial_id, node_meter(), energy_clock)
            if not self._auditor.refused:
                super().setup(config)

        def step(self) -> dict[str, Any]:
            if self._auditor.refused:
                return {"done": True}
            result = super().step()
            return {**result, **_figures(self._auditor)}

        def cleanup(self) -> None:
            try:
                if not self._auditor.refused:
                    super().cleanup()
            finally:
                self._auditor.finish(finished=True)

    Audited.__name__ = Audited.__qualname__ = cls.__name__
    return Audited


__all__ = ["NodeMeter", "node_meter", "start_node_meters", "tell_node_meters", "usage", "with_audit"]
