"""The figures a user sees on a trial while the search runs (Optuna's user attribute, Ray's
``auditor/`` result metrics), from the same energy and GPU time the ledger records.

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
