"""Trials measured in other processes: the records built from the figures a trial's worker
adds to its results (:func:`auditor.search.figures.result_metrics`, ``auditor/...``) and from
its node meter's final figures (:meth:`auditor.meters.node.NodeMeter.final`).

Example:
    >>> metrics = result_metrics({"gpu": 3.6e6, "cpu": 0.0, "memory": 0.0}, 3600.0, "node-1")
    >>> metrics["auditor/energy_kwh"], usage_of(metrics).gpu_hours
    (1.0, 1.0)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from auditor.ledger import EnergyReading, TrialRecord, TrialState, Usage
from auditor.model.units import JOULES_PER_KWH
from auditor.search.figures import DOMAINS, PREFIX, result_metrics
from auditor.search.records import NAME_LIMIT, jsonable_params

logger = logging.getLogger("auditor")


def scheduler_horizon(scheduler: Any) -> tuple[str, float] | None:
    """The result key and value at which ``scheduler`` ends a trial as done (ASHA's and
    HyperBand's ``time_attr`` and ``max_t``), or None for a scheduler without one."""
    if scheduler is None:
        return None
    max_t = getattr(scheduler, "_max_t", None) or getattr(scheduler, "_max_t_attr", None)
    time_attr = getattr(scheduler, "_time_attr", None)
    if not isinstance(max_t, (int, float)) or not isinstance(time_attr, str):
        logger.warning("%s has no max_t: trials it ends are recorded stopped", type(scheduler).__name__)
        return None
    return time_attr, float(max_t)


def carry_figures(previous: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with the figures of ``previous`` (the trial's latest result) where it has none
    of its own: a worker adds them to results at most every 0.1 s.

    Example:
        >>> carry_figures({"loss": 3, "auditor/gpu_seconds": 2.0}, {"loss": 1})
        {'auditor/gpu_seconds': 2.0, 'loss': 1}
    """
    if PREFIX + "energy_kwh" in result:
        return dict(result)
    return {**{key: value for key, value in previous.items() if key.startswith(PREFIX)}, **result}


def usage_of(result: dict[str, Any]) -> Usage:
    """One trial's energy and GPU time as its last result reported them."""
    joules = sum(float(result.get(f"{PREFIX}{domain}_energy_j", 0.0)) for domain in DOMAINS)
    return Usage(joules / JOULES_PER_KWH, float(result.get(PREFIX + "gpu_seconds", 0.0)) / 3600, 1)


def pending_usage(latest: dict[str, dict[str, Any]], recorded: Collection[str], held: list[TrialRecord]) -> Usage:
    """What a budget adds to the ledger's sum: the trials not written yet, each once, by their
    last result (``latest``, by trial key, but those ``recorded``) or by their held-back final
    record (a ledger fault). Their heartbeat rows in the ledger are left out by their keys.

    Example:
        >>> pending_usage({"a": {"auditor/gpu_seconds": 3600.0}, "b": {}}, {"b"}, []).gpu_hours
        1.0
    """
    pending = {key: usage_of(result) for key, result in latest.items() if key not in recorded}
    pending.update({r.trial_key: Usage(r.energy_kwh, r.gpu_hours, 1) for r in held if r.state is not TrialState.RUNNING})
    return Usage(sum(u.energy_kwh for u in pending.values()), sum(u.gpu_hours for u in pending.values()),
                 len(pending), frozenset(pending))


def _energy_of_result(result: dict[str, Any]) -> dict[str, EnergyReading]:
    methods = {"gpu": "counter", "cpu": "estimate-tdp", "memory": "estimate"}
    return {domain: EnergyReading(float(result[f"{PREFIX}{domain}_energy_j"]), methods[domain])
            for domain in DOMAINS if f"{PREFIX}{domain}_energy_j" in result}


def running_record(sweep: str, trial_key: str, name: str, start: float, params: dict[str, Any],
                   latest: dict[str, Any]) -> TrialRecord:
    """A running trial's heartbeat row, with its figures as of its last result."""
    now = time.time()
    return TrialRecord(
        sweep=sweep, trial_key=trial_key, name=name[:NAME_LIMIT], state=TrialState.RUNNING,
        start_time=start, end_time=now, params=jsonable_params(params),
        gpu_seconds=float(latest.get(PREFIX + "gpu_seconds", 0.0)), energy=_energy_of_result(latest), flags=["heartbeat"],
    )


@dataclass
class Ending:
    """What the framework said of a trial's end, kept until its final figures arrive.

    Attributes:
        failed: the trial raised.
        cut_short: it was stopped before it ended by itself (a stopper, the experiment's end).
        by_budget: the budget stopped it.
        reached_end: it reached the end its scheduler sets (ASHA's ``max_t``): ended by the
            scheduler there, it is complete, not cut short.
        end: when it ended (wall clock).
        latest: its last result, with the latest figures a result carried.
        params: its configuration.
        name: its name in the framework.
        shown: the framework's own last result of the trial (Ray's ``trial.last_result``,
            which its ``ResultGrid`` shows), given the final figures once they are known.
    """

    failed: bool
    cut_short: bool
    by_budget: bool
    end: float
    reached_end: bool = False
    latest: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    shown: dict[str, Any] | None = None

    def show(self, record: TrialRecord) -> None:
        """Give the framework's last result of the trial the figures of its ledger record, so
        that both show the same numbers (a trial that never reported keeps an empty result).

        Example:
            >>> shown = {"loss": 0.5}
            >>> record = TrialRecord(sweep="s", trial_key="t", state="complete", start_time=0.0,
            ...                      gpu_seconds=7.0, energy={"gpu": EnergyReading(3.6e6, "counter")})
            >>> Ending(False, False, False, 1.0, shown=shown).show(record)
            >>> shown["auditor/energy_kwh"], shown["auditor/gpu_seconds"], shown["loss"]
            (1.0, 7.0, 0.5)
        """
        if self.shown:
            joules = {domain: reading.joules for domain, reading in record.energy.items()}
            node_id = self.latest.get(PREFIX + "node_id") or self.shown.get(PREFIX + "node_id", "")
            self.shown.update(result_metrics(joules, record.gpu_seconds, node_id))


def _stopped_from_outside(final: dict[str, Any] | None, worker: dict[str, Any]) -> bool:
    """True when the trial's code did not return: it raised on a stop (``finished`` False), or
    its worker was killed before it could say (its node meter answered, with no word from it)."""
    return worker.get("finished") is False or (final is not None and "finished" not in worker)


def final_record(sweep: str, trial_key: str, start: float, ending: Ending, final: dict[str, Any] | None) -> TrialRecord:
    """A finished trial's row: its GPU figures from its node meter's ``final`` (or, if they
    never came, from its last result, flagged), its CPU and memory figures from its worker."""
    latest = ending.latest
    node_id = latest.get(PREFIX + "node_id") or (final or {}).get("node_id")
    worker = (final or {}).get("worker", {})
    if ending.failed:
        state = TrialState.FAILED
    elif ending.by_budget or ending.cut_short or (not ending.reached_end and _stopped_from_outside(final, worker)):
        state = TrialState.STOPPED
    else:
        state = TrialState.COMPLETE
    flags = list((final or {}).get("flags", []))
    energy = _energy_of_result(latest)
    for domain in ("cpu", "memory"):
        if domain in worker:
            energy[domain] = EnergyReading(worker[domain]["joules"], worker[domain]["method"])
    if final is not None:
        energy["gpu"] = EnergyReading(final["gpu_energy_j"], final["gpu_energy_method"])
    else:
        flags.append("energy-up-to-last-report" if latest else "energy-missing")
    if ending.by_budget:
        flags.append("stopped-by-budget")
    return TrialRecord(
        sweep=sweep,
        trial_key=trial_key,
        name=ending.name[:NAME_LIMIT],
        state=state,
        start_time=start,
        end_time=ending.end,
        params=jsonable_params(ending.params),
        host=str(latest.get("hostname") or latest.get("node_ip") or "unknown"),
        devices=(final or {}).get("devices", []),
        gpu_seconds=float((final or {}).get("gpu_seconds", latest.get(PREFIX + "gpu_seconds", 0.0))),
        energy=energy,
        flags=[f"node: {node_id}", *flags] if node_id else flags,
        stopped_by_budget=ending.by_budget,
    )
