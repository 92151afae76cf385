"""A trial's ledger record, built the same way for every plugin and for ``auditor.track``.

Example:
    >>> from auditor.ledger import TrialState
    >>> record = record_for(None, sweep="s", trial_key="s/0", name=None, state=TrialState.FAILED,
    ...                     wall_start=0.0, wall_end=1.0)
    >>> record.flags
    ['energy-missing']
"""

from __future__ import annotations

import json
from typing import Any

from auditor.ledger import EnergyReading, TrialRecord, TrialState
from auditor.ledger.records import NAME_LIMIT, fit_name  # noqa: F401  (the plugins' import)
from auditor.ledger.schema import ENERGY_DOMAINS
from auditor.meters.sampler import Measurement
from auditor.search.forecast import sweep_attrs


def budget_record(budget: Any) -> dict[str, Any] | None:
    """A search's budget as its sweep keeps it (so reports know it before it speaks at 50 %).

    Example:
        >>> from auditor.budget.limits import Budget
        >>> budget_record(Budget.parse("2 kg", mode="hard"))
        {'text': '2 kg', 'metric': 'co2e_kg', 'limit': 2.0, 'scope': 'sweep', 'mode': 'hard'}
    """
    if budget is None:
        return None
    return {"text": budget.text, "metric": budget.limit.metric.value, "limit": budget.limit.value,
            "scope": budget.scope.value, "mode": budget.mode.value}


def sweep_record(model: Any, budget: Any, planned: int | None = None, **extra: Any) -> dict[str, Any]:
    """What a search keeps with its sweep when it creates it: its carbon model's settings, the
    budget it started with and how many trials it plans (reports show the budget before its
    first event, and project the search's cost).

    Example:
        >>> from auditor.model.carbon import CarbonModel
        >>> record = sweep_record(CarbonModel(), None, 50, study="s")
        >>> record["study"], record["budget"], record["planned_trials"], "region" in record["settings"]
        ('s', None, 50, True)
    """
    return {**extra, "settings": model.to_record(), "budget": budget_record(budget), **sweep_attrs(planned)}


def devices_of(measurement: Measurement | IdleMeasurement | None) -> list[dict[str, Any]]:
    """The GPUs of a measurement as the ledger stores them."""
    if measurement is None:
        return []
    return [{"key": d.key, "index": d.index, "model": d.name} for d in measurement.gpus]


def _domain_order(item: tuple[str, EnergyReading]) -> int:
    return ENERGY_DOMAINS.index(item[0]) if item[0] in ENERGY_DOMAINS else len(ENERGY_DOMAINS)


def record_for(
    measurement: Measurement | IdleMeasurement | None,
    *,
    sweep: str,
    trial_key: str,
    name: str | None,
    state: TrialState,
    wall_start: float,
    wall_end: float,
    params: dict[str, Any] | None = None,
    flags: list[str] | None = None,
    is_final: bool = False,
    objective: list[float] | None = None,
    number: int | None = None,
    stopped_by_budget: bool = False,
    run: str | None = None,
) -> TrialRecord:
    """A ledger record from a measurement (or from none, flagged ``energy-missing``)."""
    return TrialRecord(
        sweep=sweep,
        trial_key=trial_key,
        number=number,
        run=run,
        objective=objective,
        stopped_by_budget=stopped_by_budget,
        name=name,
        state=state,
        start_time=wall_start,
        end_time=wall_end,
        params=params or {},
        devices=devices_of(measurement),
        gpu_seconds=measurement.gpu_seconds if measurement else 0.0,
        # in the ledger's order of domains, as it reads them back: the total sums alike, to the bit
        energy=dict(sorted(measurement.energy.items(), key=_domain_order)) if measurement else {},
        flags=[*(flags or []), *(measurement.flags if measurement else ["energy-missing"])],
        is_final=is_final,
    )


class IdleMeasurement:
    """Energy no trial held, per domain, in the shape :func:`record_for` reads from a
    measurement: the search's idle overhead (sampling, storage, waiting between trials).

    Example:
        >>> IdleMeasurement({"gpu": 5.0}, {"gpu": "counter"}).energy["gpu"].method
        'counter'
    """

    def __init__(self, joules: dict[str, float], methods: dict[str, str]) -> None:
        self.energy = {domain: EnergyReading(j, methods.get(domain, "none")) for domain, j in joules.items()}
        self.gpu_seconds = 0.0
        self.gpus: list[Any] = []
        self.flags: list[str] = []


def jsonable_params(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's configuration as the ledger keeps it: scalars as they are, anything else
    (lists, search-space objects) as JSON text.

    Example:
        >>> jsonable_params({"lr": 0.1, "layers": [64, 64]})
        {'lr': 0.1, 'layers': '[64, 64]'}
    """
    return {k: v if isinstance(v, (int, float, str, bool, type(None))) else json.dumps(v, default=str, ensure_ascii=False) for k, v in config.items()}


