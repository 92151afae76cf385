"""The figures a user sees on a trial while the search runs (Optuna's user attributes, Ray's
``auditor/`` result metrics), from the same energy and GPU time the ledger records.

Optuna's user attributes (:func:`user_attrs`) come from the trial's ledger record itself, the
one written to the ledger, through the carbon model's ``footprint`` as the report computes a
trial's figures: the numbers are equal, not merely close.

The result keys are the auditor's, whatever the framework: ``auditor/gpu_energy_j``,
``auditor/cpu_energy_j``, ``auditor/memory_energy_j``, ``auditor/energy_kwh``,
``auditor/energy_j`` (their sum: the energy clock, :data:`ENERGY_CLOCK`), ``auditor/gpu_seconds``
and ``auditor/node_id``. This module imports no database code: a
framework's worker process (a Ray trial's) loads it at every trial.

Example:
    >>> from auditor.model.carbon import CarbonModel, Footprint
    >>> from auditor.model.regions import resolve_region
    >>> figures = trial_figures(3.6e6, 7200.0, CarbonModel(resolve_region("500 g/kWh"), pue=1.0))
    >>> figures["energy_kwh"], figures["gpu_hours"], figures["co2e_kg"]
    (1.0, 2.0, 0.5)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from auditor.errors import InvalidInputError
from auditor.meters.attribution import Interval
from auditor.model.carbon import CarbonModel, Footprint
from auditor.model.units import JOULES_PER_KWH

logger = logging.getLogger("auditor")

if TYPE_CHECKING:  # the record's type only: this module loads no database code
    from auditor.ledger import TrialRecord

PREFIX = "auditor/"  # the result keys of the figures a worker adds (Ray Tune)
DOMAINS = ("gpu", "cpu", "memory")
ENERGY_CLOCK = PREFIX + "energy_j"  # a trial's joules so far, every domain: a scheduler's time_attr
ATTR = "auditor"  # the user attribute holding every figure and what they were computed with
NUMERIC_ATTRS = ("energy_kwh", "co2e_kg", "gpu_hours", "cost_usd")  # each also its own attribute, auditor_<name>


def trial_figures(joules: float, gpu_seconds: float, model: CarbonModel) -> dict[str, Any]:
    """GPU-hours, IT energy, CO2e and the region they were computed with."""
    kwh = joules / JOULES_PER_KWH
    footprint = model.footprint(kwh, gpu_seconds / 3600)
    return {"gpu_hours": gpu_seconds / 3600, "energy_kwh": kwh, "co2e_kg": footprint.co2e_kg, "region": model.region.code}


def user_attrs(record: TrialRecord, model: CarbonModel) -> dict[str, Any]:
    """A finished trial's figures as Optuna user attributes, from its ledger record.

    Each figure is its own number (``auditor_energy_kwh``, ``auditor_co2e_kg``,
    ``auditor_gpu_hours``, and ``auditor_cost_usd`` when a price is set: without one there is
    no cost, and the attribute is left out rather than written empty), which optuna-dashboard
    sorts and plots; ``auditor`` holds the same figures with the facility energy, region, PUE,
    methods and flags. IT energy and GPU-hours are the record's own (``energy_kwh``,
    ``gpu_hours``, what ``audit report`` and ``audit trials`` read back); CO2e and cost come
    from ``model.footprint`` of those, as the report computes them with the sweep's settings.

    Example:
        >>> from auditor.ledger import EnergyReading, TrialRecord
        >>> from auditor.model.carbon import Price
        >>> from auditor.model.regions import resolve_region
        >>> record = TrialRecord(sweep="s", trial_key="s/0", state="complete", start_time=0.0, end_time=7200.0,
        ...                      gpu_seconds=7200.0, energy={"gpu": EnergyReading(3.6e6, "counter")})
        >>> model = CarbonModel(resolve_region("500 g/kWh"), pue=1.0, price=Price(per_gpu_hour=2.0))
        >>> attrs = user_attrs(record, model)
        >>> attrs["auditor_energy_kwh"], attrs["auditor_co2e_kg"], attrs["auditor_gpu_hours"], attrs["auditor_cost_usd"]
        (1.0, 0.5, 2.0, 4.0)
        >>> attrs["auditor"]["energy_kwh"] == attrs["auditor_energy_kwh"], attrs["auditor"]["methods"]
        (True, {'gpu': 'counter'})
        >>> "auditor_cost_usd" in user_attrs(record, CarbonModel(resolve_region("500 g/kWh")))
        False
    """
    co2e_missing = None
    try:  # over the trial's own interval, which matters under an hourly series: as the report
        footprint = model.footprint(record.energy_kwh, record.gpu_hours, (record.start_time, record.end_time or record.start_time))
        co2e: float | None = footprint.co2e_kg
    except InvalidInputError as exc:  # the series misses the trial's hours: no CO2e rather than a wrong one
        footprint, co2e, co2e_missing = model.footprint(record.energy_kwh, record.gpu_hours), None, str(exc)
    figures: dict[str, float | None] = {"energy_kwh": footprint.energy_kwh, "co2e_kg": co2e,
                                        "gpu_hours": footprint.gpu_hours, "cost_usd": footprint.cost_usd}
    numbers = {name: figures[name] for name in NUMERIC_ATTRS if figures[name] is not None}
    summary: dict[str, Any] = {
        **numbers, "facility_kwh": footprint.facility_kwh, "region": model.region.code, "pue": model.effective_pue,
        "methods": {domain: reading.method for domain, reading in record.energy.items()}, "flags": list(record.flags),
        **({"co2e_missing": co2e_missing} if co2e_missing else {}),
    }
    return {**{f"{ATTR}_{name}": value for name, value in numbers.items()}, ATTR: summary}


def interval_so_far(interval: Interval) -> tuple[float, float]:
    """Joules and GPU-seconds of an interval up to its end (or its last reading while open)."""
    end = interval.end
    gpu_seconds = sum(end - since for key, since in interval.devices.items() if key.startswith("gpu:")) if end is not None else 0.0
    return sum(interval.energy.values()), gpu_seconds


def result_metrics(joules: dict[str, float], gpu_seconds: float, node_id: str) -> dict[str, Any]:
    """The figures a worker adds to a result: joules per domain and in all, IT kWh, GPU-seconds, node.

    Example:
        >>> figures = result_metrics({"gpu": 3000.0, "cpu": 500.0, "memory": 100.0}, 10.0, "n")
        >>> figures["auditor/energy_j"], figures["auditor/energy_kwh"], figures["auditor/gpu_seconds"]
        (3600.0, 0.001, 10.0)
    """
    figures: dict[str, Any] = {f"{domain}_energy_j": float(joules.get(domain, 0.0)) for domain in DOMAINS}
    total = sum(figures[f"{domain}_energy_j"] for domain in DOMAINS)
    figures["energy_j"] = total
    figures["gpu_seconds"] = float(gpu_seconds)
    figures["energy_kwh"] = total / JOULES_PER_KWH
    return {**{PREFIX + key: value for key, value in figures.items()}, PREFIX + "node_id": node_id}


def footprint_so_far(joules: dict[str, float], gpu_seconds: float, model: CarbonModel,
                     interval: tuple[float, float] | None = None) -> Footprint:
    """A running trial's footprint from its joules per domain and GPU-seconds so far, through
    ``model`` as its ledger record's figures are (``user_attrs``, the report). ``interval``
    (its start and now, seconds since the epoch) matters only to a model with an hourly
    intensity series: CO2e so far is then charged at the series' mean over it (the record, at
    its mean over the whole trial); a series that does not cover it falls back on the region's
    figure, with a warning, rather than fail the trial.

    Example:
        >>> from auditor.model.regions import resolve_region
        >>> model = CarbonModel(resolve_region("500 g/kWh"), pue=1.5)
        >>> so_far = footprint_so_far({"gpu": 3.0e6, "cpu": 6.0e5}, 1800.0, model)
        >>> so_far.energy_kwh, so_far.facility_kwh, so_far.co2e_kg, so_far.gpu_hours
        (1.0, 1.5, 0.75, 0.5)
    """
    kwh, gpu_hours = sum(joules.values()) / JOULES_PER_KWH, gpu_seconds / 3600
    if interval is not None and getattr(model, "series", None) is not None:
        try:
            return model.footprint(kwh, gpu_hours, interval)
        except InvalidInputError as exc:
            logger.warning("CO2e so far at the region's figure: %s", exc)
    return model.footprint(kwh, gpu_hours)
