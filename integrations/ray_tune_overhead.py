"""Ray Tune plugin: the experiment's own cost, outside its trials, as the sweep's idle energy.

An Optuna search records the energy between its trials as its sweep's ``idle`` row; a Ray
experiment's equivalent is what its processes and held GPUs draw outside trials: the driver,
the raylet, the GCS and the dashboard (on the driver's node), every Ray worker process before
and after it runs a trial (start-up, imports), this plugin's own meters, and the GPUs its trials
held while none did. Each node's meter measures its share
(:meth:`auditor.meters.node.NodeMeter.overhead`, started when the driver settles the
experiment on it); :class:`ExperimentOverhead` asks every node, sums, and makes the idle row,
which the ledger keeps one of (a newer one replaces it): the budget, ``audit report`` and
every format count it as they count an Optuna search's.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import ray
from auditor.integrations.ray_tune_worker import node_meter

from auditor.ledger import EnergyReading, TrialRecord, TrialState
from auditor.meters.base import worst_method

logger = logging.getLogger("auditor")
ASK_EVERY_S = 5.0  # the idle row is brought up to date at most this often while trials end


def idle_record(sweep: str, job_id: str, start: float, answers: list[dict[str, Any] | None]) -> TrialRecord | None:
    """The sweep's idle row from the nodes' :meth:`~auditor.meters.node.NodeMeter.overhead`
    answers (None for a node that never metered this job), or None if no node did.

    Example:
        >>> answers = [{"node_id": "a", "cpu": {"joules": 2.0, "method": "estimate-tdp"},
        ...             "memory": {"joules": 1.0, "method": "estimate"}},
        ...            {"node_id": "b", "cpu": {"joules": 3.0, "method": "estimate-tdp"},
        ...             "memory": {"joules": 0.5, "method": "estimate"}}, None]
        >>> record = idle_record("exp", "01000000", 0.0, answers)
        >>> record.state.value, record.energy["cpu"].joules, record.energy["memory"].joules
        ('idle', 5.0, 1.5)
    """
    found = [answer for answer in answers if answer]
    if not found:
        return None
    energy: dict[str, EnergyReading] = {}
    for domain in ("gpu", "cpu", "memory"):
        readings = [answer[domain] for answer in found if domain in answer]
        if readings:
            energy[domain] = EnergyReading(sum(r["joules"] for r in readings), worst_method({r["method"] for r in readings}))
    return TrialRecord(
        sweep=sweep, trial_key=f"idle/ray/{job_id}/{start:.3f}", name="experiment overhead", state=TrialState.IDLE,
        start_time=start, end_time=time.time(), energy=energy,
        flags=[f"nodes: {len(found)}", "ray-experiment-overhead"],
    )


class ExperimentOverhead:
    """Asks every node's meter for the experiment's overhead, without waiting, and turns the
    answers into the sweep's idle row once they all came (:meth:`collect`).

    Args:
        start: when the experiment began (wall clock), the idle row's start.
    """

    def __init__(self, start: float) -> None:
        self.start = start
        self.job_id = ray.get_runtime_context().get_job_id()
        self.key = f"{self.job_id}/{os.getpid()}/{start:.6f}"  # one driver may run several experiments
        self._asked: list[Any] = []
        self._asked_at = -float("inf")

    def ask(self, nodes: list[str], final: bool = False) -> None:
        """Ask the meters of ``nodes`` (at most every :data:`ASK_EVERY_S`, unless ``final``: the
        experiment is over, and they stop metering it). Never raises."""
        if not final and (self._asked or time.monotonic() - self._asked_at < ASK_EVERY_S):
            return
        try:
            self._asked = [node_meter(node).overhead.remote(self.key, final) for node in nodes]
            self._asked_at = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - the trials are recorded all the same
            logger.warning("the experiment's overhead not asked for: %s", exc)

    def settings(self) -> dict[str, Any]:
        """What the node meters need, settled on them as the experiment starts: which
        experiment this is, and the driver's process and node (metered too)."""
        return {"experiment": self.key, "driver_pid": os.getpid(), "driver_node": ray.get_runtime_context().get_node_id()}

    def update(self, writer: Any, sweep: str, nodes: list[str], final: bool = False) -> None:
        """Bring the sweep's idle row up to date through ``writer`` (a
        :class:`~auditor.ledger.writer.LedgerWriter`): asked of the meters of ``nodes`` as trials
        end (every few seconds at most), written once they all answered; ``final`` waits for
        them (30 s at most) and has them stop metering this experiment."""
        self.ask(nodes, final=final)
        record = self.collect(sweep, wait_s=30.0 if final else 0.0)
        if record is not None:
            writer.write([record])

    def collect(self, sweep: str, wait_s: float = 0.0) -> TrialRecord | None:
        """The idle row, once every asked meter answered (waiting ``wait_s`` at most), or None."""
        if not self._asked:
            return None
        done, _ = ray.wait(self._asked, num_returns=len(self._asked), timeout=wait_s)
        if len(done) < len(self._asked):
            if wait_s:
                logger.warning("the experiment's overhead: %d of %d nodes did not answer in %.0f s; their share is "
                               "not recorded", len(self._asked) - len(done), len(self._asked), wait_s)
            else:
                return None
        answers: list[dict[str, Any] | None] = []
        for ref in done:
            try:
                answers.append(ray.get(ref))
            except Exception as exc:  # noqa: BLE001
                logger.warning("the experiment's overhead on a node not read: %s", exc)
        self._asked = []
        return idle_record(sweep, self.job_id, self.start, answers)
