"""`audit estimate`: footprint from hours, device count and power draw (or model)."""

from __future__ import annotations

from enum import Enum

import typer

from auditor.cli.common import console, number_in, print_json, settings_with
from auditor.config import carbon_model
from auditor.model.embodied import (
    DEFAULT_LIFETIME_YEARS,
    DEFAULT_UTILIZATION,
    Embodied,
    embodied_for,
)
from auditor.model.estimate import estimate
from auditor.model.hardware import find_hardware
from auditor.model.units import Metric, format_cost, format_quantity, parse_intensity, significant


class EstimateFormat(str, Enum):
    table = "table"
    json = "json"


def estimate_command(
    hours: float = typer.Option(..., "--hours", parser=number_in(0), metavar="NUMBER", help="Wall-clock hours the devices ran."),
    watts: float | None = typer.Option(None, "--watts", parser=number_in(0), metavar="NUMBER", help="Power draw of one device, W."),
    gpu: str | None = typer.Option(None, "--gpu", help="Device model: its TDP comes from the hardware table (`audit hardware`)."),
    count: int = typer.Option(1, "--count", min=1, help="Number of devices."),
    pue: float | None = typer.Option(None, "--pue", parser=number_in(1.0), metavar="NUMBER", help="Data-centre PUE (default: the region's, else 1.58)."),
    intensity: str | None = typer.Option(None, "--intensity", help="Carbon intensity with unit: '545 g/kWh', '0.954 lb/kWh'."),
    region: str | None = typer.Option(None, "--region", help="Country (DE), cloud region (aws:us-east-1) or intensity."),
    price_per_gpu_hour: float | None = typer.Option(None, "--price-per-gpu-hour", parser=number_in(0), metavar="NUMBER", help="USD per GPU-hour."),
    price_per_kwh: float | None = typer.Option(None, "--price-per-kwh", parser=number_in(0), metavar="NUMBER", help="USD per facility kWh."),
    embodied_kg: float | None = typer.Option(
        None, "--embodied-kg", parser=number_in(0), metavar="NUMBER",
        help="Embodied kg CO2e of one device with its server share (BLOOM: 462.5 per A100); adds embodied carbon.",
    ),
    embodied: bool = typer.Option(False, "--embodied", help="Add embodied carbon from the hardware table's figure for --gpu."),
    lifetime_years: float = typer.Option(DEFAULT_LIFETIME_YEARS, "--lifetime-years", parser=number_in(0), metavar="NUMBER",
                                         help="Years a device serves (embodied carbon)."),
    utilization: float = typer.Option(DEFAULT_UTILIZATION, "--utilization", parser=number_in(0, 1), metavar="NUMBER",
                                      help="Share of its life a device is busy, 0-1 (embodied carbon)."),
    wue: float | None = typer.Option(None, "--wue", parser=number_in(0), metavar="NUMBER", help="Water use on site, litres per IT kWh."),
    output: EstimateFormat = typer.Option(EstimateFormat.table, "--format", help="table or json.", case_sensitive=False),
) -> None:
    """Estimate energy, CO2e and cost of devices running for some hours.

    Example (Strubell et al. 2019, Table 3): audit estimate --hours 84 --watts 1515.43 --pue 1.58 --intensity "0.954 lb/kWh"
    """
    if (watts is None) == (gpu is None):
        raise typer.BadParameter(
            "give the draw of one device with --watts W, or its model with --gpu MODEL (one of them)",
            param_hint="'--watts' / '--gpu'",
        )
    if intensity is not None and region is not None:
        raise typer.BadParameter("give --intensity or --region, not both", param_hint="'--intensity' / '--region'")
    if price_per_gpu_hour is not None and price_per_kwh is not None:
        raise typer.BadParameter(
            "give --price-per-gpu-hour or --price-per-kwh, not both", param_hint="'--price-per-gpu-hour' / '--price-per-kwh'"
        )
    if intensity is not None:
        parse_intensity(intensity)  # an intensity flag must carry its unit
    settings = settings_with(
        region=intensity or region, pue=pue, price_per_gpu_hour=price_per_gpu_hour, price_per_kwh=price_per_kwh
    )
    model = carbon_model(settings)
    hardware = find_hardware(gpu) if gpu is not None else None
    charged: Embodied | None = None
    if embodied_kg is not None:
        charged = Embodied(embodied_kg, lifetime_years, utilization)
    elif embodied:
        charged = embodied_for(hardware.name if hardware else None, "gpu", lifetime_years, utilization)
    result = estimate(hours, watts=watts, hardware=hardware, devices=count, model=model, embodied=charged,
                      wue_l_per_kwh=wue)
    if output is EstimateFormat.json:
        print_json(result.to_dict())
        return
    fp, region_ = result.footprint, model.region
    name = f"{count} x {hardware.name}" if hardware else f"{count} device{'s' if count > 1 else ''}"
    cost = f"{format_cost(fp.cost_usd)} ({model.price.describe()})" if fp.cost_usd is not None else "- (give --price-per-gpu-hour or --price-per-kwh)"

    def amount(metric: Metric, value: float) -> str:  # 4 significant digits: checkable against published rows
        return format_quantity(metric, value, digits=4)

    lines = [
        ("Work", f"{name} x {result.watts_per_device:g} W x {hours:,.0f} h" if hours >= 1e4 else f"{name} x {result.watts_per_device:g} W x {hours:g} h"),
        ("GPU time", amount(Metric.GPU_HOURS, fp.gpu_hours)),
        ("IT energy", amount(Metric.ENERGY_KWH, fp.energy_kwh)),
        ("PUE", f"{model.effective_pue:g} ({model.pue_source})"),
        ("Facility", amount(Metric.ENERGY_KWH, fp.facility_kwh)),
        ("Intensity", f"{significant(region_.g_co2e_per_kwh, 4)} gCO2e/kWh ({region_.describe()})"),
        ("CO2e", amount(Metric.CO2E_KG, fp.co2e_kg) + (f" ({significant(fp.co2e_lb, 4)} lb)" if fp.co2e_lb >= 1 else "")),
        ("Cost", cost),
    ]
    if result.embodied_co2e_kg is not None:
        lines.append(("Embodied", f"{amount(Metric.CO2E_KG, result.embodied_co2e_kg)} of making the devices: "
                                  f"{result.embodied.describe()}"))  # type: ignore[union-attr]
        lines.append(("Total CO2e", f"{amount(Metric.CO2E_KG, fp.co2e_kg + result.embodied_co2e_kg)} (operational + embodied)"))
    if result.water_l is not None:
        lines.append(("Water", f"{significant(result.water_l, 4)} L ({wue:g} L per IT kWh)"))
    out = console()
    for label, value in lines:
        out.print(f"{label:<11}{value}", overflow="fold")
    if hardware is not None:
        out.print(f"{'Power':<11}{result.power_source}", overflow="fold")
    for note in result.notes:
        out.print(f"note: {note}", overflow="fold")
