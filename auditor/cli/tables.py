"""`audit regions` and `audit hardware`: list and search the bundled reference tables."""

from __future__ import annotations

import typer

from auditor.cli.common import TableOrJson, console, make_table, print_json
from auditor.errors import UnknownHardwareError
from auditor.model.hardware import search_hardware
from auditor.model.regions import resolve_region, search_regions
from auditor.model.text import counted


def regions_command(
    text: str | None = typer.Argument(None, help="Part of a code or name: 'de', 'europe', 'aws:'."),
    output: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table or json.", case_sensitive=False),
) -> None:
    """List the countries and cloud regions the auditor knows, with their grid's carbon intensity."""
    found = search_regions(text)
    if not found and text:
        resolve_region(text)  # raises with the closest matches
    if output is TableOrJson.json:
        print_json(
            [
                {"region": r.code, "name": r.name, "g_co2e_per_kwh": r.g_co2e_per_kwh, "year": r.year,
                 "source": r.source, "pue": r.pue, "pue_source": r.pue_source}
                for r in found
            ]
        )
        return
    table = make_table("region", "name", "gCO2e/kWh", "year", "PUE")
    for r in found:
        table.add_row(r.code, r.name, f"{r.g_co2e_per_kwh:g}", str(r.year or ""), f"{r.pue:g}" if r.pue else "")
    out = console()
    out.print(table)
    out.print(
        f"{counted(len(found), 'region')}. Countries: Our World in Data (Ember, Energy Institute), yearly averages. "
        "Cloud regions use their country's figure; PUE where the provider publishes one.",
        overflow="fold",
    )


def hardware_command(
    text: str | None = typer.Argument(None, help="Words of a model name: 'a100', 'xeon gold'."),
    kind: str | None = typer.Option(None, "--type", help="Only one type: gpu, cpu or tpu."),
    output: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table or json.", case_sensitive=False),
) -> None:
    """List the devices in the hardware table with their rated power (TDP)."""
    kind = kind.strip().lower() if kind is not None else None  # GPU as well as gpu
    if kind is not None and kind not in ("gpu", "cpu", "tpu"):
        raise typer.BadParameter(f"{kind!r} is not one of gpu, cpu, tpu", param_hint="'--type'")
    found = search_hardware(text, kind)
    if not found:
        raise UnknownHardwareError(f"no device in the hardware table matches {text!r}: run `audit hardware` for the list")
    if output is TableOrJson.json:
        print_json([{"name": h.name, "type": h.kind, "tdp_watts": h.tdp_watts, "source": h.source} for h in found])
        return
    table = make_table("model", "type", "TDP (W)", "source")
    for h in found:
        table.add_row(h.name, h.kind, f"{h.tdp_watts:g}", h.source)
    console().print(table)
