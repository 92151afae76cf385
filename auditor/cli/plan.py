"""`audit plan`: before a search, what N trials will cost if they cost what a past sweep's did.

Example:
    audit plan --like lr-search --trials 200 --budget "5 kg" --region DE
"""

from __future__ import annotations

from dataclasses import replace
from enum import Enum
from typing import Any

import typer

from auditor.cli.common import (
    LEDGER_HELP,
    console,
    make_table,
    number_in,
    open_ledger,
    print_json,
    settings_with,
)
from auditor.config import carbon_model
from auditor.errors import InvalidInputError
from auditor.model.carbon import CarbonModel, Footprint
from auditor.model.forecast import RANGE_LEVEL, Projection, describe
from auditor.model.units import Metric, format_quantity, format_share, parse_quantity
from auditor.report.forecast import plan


class PlanFormat(str, Enum):
    table = "table"
    json = "json"


ROWS = (("IT energy", Metric.ENERGY_KWH, "energy_kwh"), ("facility energy", Metric.ENERGY_KWH, "facility_kwh"),
        ("CO2e", Metric.CO2E_KG, "co2e_kg"), ("GPU time", Metric.GPU_HOURS, "gpu_hours"), ("cost", Metric.COST_USD, "cost_usd"))


def _grid(model: CarbonModel) -> dict[str, Any]:
    region = model.region
    return {"code": region.code, "name": region.name, "g_co2e_per_kwh": region.g_co2e_per_kwh,
            "source": region.describe_source(), "is_fallback": region.is_fallback,
            "pue": model.effective_pue, "price": model.price.describe()}


def plan_sentence(projection: Projection) -> str:
    """What the trials cost, as the table's closing sentence says it (the budget apart)."""
    text = describe(replace(projection, budget=None, lasts_to=None, metric=Metric.CO2E_KG))
    return f"At this rate {text.removeprefix('at this rate ')}."


def plan_json(like: str, projection: Projection, model: CarbonModel) -> dict[str, Any]:
    """The plan as JSON-ready data (canonical units: kWh, kg, GPU-hours, USD)."""
    data = projection.to_dict()
    return {"like": like, "trials": projection.planned, "from_trials": projection.trials_seen, "grid": _grid(model),
            "per_trial": data["per_trial"], "total": data["total"], "low": data["low"], "high": data["high"],
            "range_level": RANGE_LEVEL, "idle_share": projection.idle_share, "budget": data["budget"],
            "budget_covers_trials": projection.lasts_to, "method": data["method"], "text": plan_sentence(projection)}


def _cell(metric: Metric, fp: Footprint | None, key: str) -> str:
    return "-" if fp is None else format_quantity(metric, getattr(fp, key))


def plan_command(
    like: str = typer.Option(..., "--like", help="A past sweep in the ledger whose trials the new search's will resemble."),
    trials: int = typer.Option(..., "--trials", min=1, help="How many trials the new search will run."),
    budget: str | None = typer.Option(None, "--budget", help="A budget ('5 kg', '2 kWh', '100 GPUh', '$250'): how many trials it covers."),
    region: str | None = typer.Option(None, "--region", help="The grid the new search will run on (default: the setting `region`)."),
    pue: float | None = typer.Option(None, "--pue", parser=number_in(1.0), metavar="NUMBER",
                                     help="The PUE it will run under (default: the setting, else the region's)."),
    price_per_gpu_hour: float | None = typer.Option(None, "--price-per-gpu-hour", parser=number_in(0.0), metavar="NUMBER",
                                                    help="USD per GPU-hour (a cloud bill)."),
    price_per_kwh: float | None = typer.Option(None, "--price-per-kwh", parser=number_in(0.0), metavar="NUMBER", help="USD per facility kWh (own hardware)."),
    ledger: str | None = typer.Option(None, "--ledger", help=LEDGER_HELP),
    output: PlanFormat = typer.Option(PlanFormat.table, "--format", help="table or json.", case_sensitive=False),
) -> None:
    """Project the energy, CO2e, GPU-hours and cost of N trials from a past sweep's trials."""
    settings = settings_with(ledger=ledger, region=region, pue=pue, price_per_gpu_hour=price_per_gpu_hour,
                             price_per_kwh=price_per_kwh)
    model = carbon_model(settings)
    limit = None
    if budget is not None:
        quantity = parse_quantity(budget)
        if quantity.value <= 0:
            raise InvalidInputError(f"budget {budget!r} must be more than zero")
        if quantity.metric is Metric.COST_USD and not model.price.is_set:
            raise InvalidInputError("a budget in USD needs a price: give --price-per-gpu-hour or --price-per-kwh")
        limit = (quantity.metric, quantity.value)
    with open_ledger(settings) as (store, _missing):
        projection = plan(store, like, model, trials=trials, budget=limit)
    if output is PlanFormat.json:
        print_json(plan_json(like, projection, model))
        return
    out = console()
    grid = _grid(model)
    where = (f"grid: world average {grid['g_co2e_per_kwh']:g} g/kWh, no region set" if grid["is_fallback"]
             else f"grid {grid['code']} {grid['g_co2e_per_kwh']:g} g/kWh")
    out.print(f"Plan: {trials:,} trials like {like}, from its {projection.trials_seen:,} finished trials "
              f"(idle between trials: {format_share(projection.idle_share)} of their energy) · {where} · PUE {grid['pue']:g}",
              soft_wrap=True)
    table = make_table("", "a trial", f"{trials:,} trials", "90 % range")
    for column in table.columns[1:]:
        column.justify = "right"
    for label, metric, key in ROWS:
        if (key == "cost_usd" and projection.per_trial.cost_usd is None) or (key == "gpu_hours" and not projection.per_trial.gpu_hours):
            continue
        low, high = _cell(metric, projection.low, key), _cell(metric, projection.high, key)
        if projection.low is not None and not getattr(projection.low, key):
            low = "0"  # a zero in no unit: '0 to 25.8 mWh', not '0 kWh to 25.8 mWh'
        table.add_row(label, _cell(metric, projection.per_trial, key), _cell(metric, projection.total, key), f"{low} to {high}")
    out.print(table)
    out.print(plan_sentence(projection), soft_wrap=True)
    if projection.budget is not None and projection.lasts_to is not None:
        out.print(f"The {format_quantity(projection.budget.metric, projection.budget.limit)} budget covers about "
                  f"{projection.lasts_to:,} trials like these.", soft_wrap=True)
    out.print("The trials are assumed to cost what the past sweep's did (same hardware, model and data sizes); "
              "the range is that sweep's spread between trials.", soft_wrap=True)
    if grid["is_fallback"]:
        out.print("Set the grid the search will run on for exact carbon: --region CODE (audit regions), or audit config set region CODE.",
                  soft_wrap=True)

