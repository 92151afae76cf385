"""The figures a user sees on a trial while the search runs (Optuna's user attribute, Ray's
``auditor/`` result metrics), from the same energy and GPU time the ledger records.

The result keys are the auditor's, whatever the framework: ``auditor/gpu_energy_j``,
``auditor/cpu_energy_j``, ``auditor/memory_energy_j``, ``auditor/energy_kwh``,
``auditor/gpu_seconds`` and ``auditor/node_id``. This module imports no database code: a
framework's worker process (a Ray trial's) loads it at every trial.

Example:
    >>> from auditor.model.carbon import CarbonModel
    >>> from auditor.model.regions import resolve_region
    >>> figures = trial_figures(3.6e6, 7200.0, CarbonModel(resolve_region("500 g/kWh"), pue=1.0))
    >>> figures["energy_kwh"], figures["gpu_hours"], figures["co2e_kg"]
    (1.0, 2.0, 0.5)
"""

from __future__ import annotations

from typing import Any

from auditor.meters.attribution import Interval
from auditor.model.carbon import CarbonModel
from auditor.model.units import JOULES_PER_KWH

PREFIX = "auditor/"  # the result keys of the figures a worker adds (Ray Tune)
DOMAINS = ("gpu", "cpu", "memory")


def trial_figures(joules: float, gpu_seconds: float, model: CarbonModel) -> dict[str, Any]:
    """GPU-hours, IT energy, CO2e and the region they were computed with."""
    kwh = joules / JOULES_PER_KWH
    footprint = model.footprint(kwh, gpu_seconds / 3600)
    return {"gpu_hours": gpu_seconds / 3600, "energy_kwh": kwh, "co2e_kg": footprint.co2e_kg, "region": model.region.code}


def interval_so_far(interval: Interval) -> tuple[float, float]:
    """Joules and GPU-seconds of an interval up to its end (or its last reading while open)."""
    end = interval.end
    gpu_seconds = sum(end - since for key, since in interval.devices.items() if key.startswith("gpu:")) if end is not None else 0.0
    return sum(interval.energy.values()), gpu_seconds


def result_metrics(joules: dict[str, float], gpu_seconds: float, node_id: str) -> dict[str, Any]:
    """The figures a worker adds to a result: joules per domain, IT kWh, GPU-seconds, node."""
    figures: dict[str, Any] = {f"{domain}_energy_j": float(joules.get(domain, 0.0)) for domain in DOMAINS}
    figures["gpu_seconds"] = float(gpu_seconds)
    figures["energy_kwh"] = sum(figures[f"{domain}_energy_j"] for domain in DOMAINS) / 3.6e6
    return {**{PREFIX + key: value for key, value in figures.items()}, PREFIX + "node_id": node_id}
