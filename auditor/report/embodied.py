"""Embodied carbon and water in the report, each on its own, never mixed into the operational CO2e.

Embodied carbon is charged on the sweeps' GPU-hours (the report's ``gpu_hours``, idle stretches
left out): ``GPU-hours x kg per device / (lifetime_years x 8,760 h x utilization)``
(:mod:`auditor.model.embodied`, Luccioni et al. 2022's method). With ``"table"`` each GPU-hour is
charged at its GPU model's figure from the bundled table; a model with no published figure, or a
trial whose model was not recorded, at the class default, and the report says so. Water is IT kWh
x WUE (litres of water used on site per IT kWh).

Both are off unless set (settings ``embodied``, ``wue``; ``audit report --embodied-kg``,
``--wue``): a report without them has none of their keys, columns or sentences.

Example:
    >>> report = {"sweeps": [{"name": "lr", "gpu_hours": 10.0, "energy_kwh": 4.0, "co2e_kg": 1.0}],
    ...           "totals": {"gpu_hours": 10.0, "energy_kwh": 4.0, "co2e_kg": 1.0}}
    >>> add_embodied_and_water(report, None, None, EmbodiedSettings(462.5), wue_l_per_kwh=1.8)
    >>> round(report["totals"]["embodied_co2e_kg"], 6), report["totals"]["water_l"]
    (0.103523, 7.2)
    >>> embodied_sentence(report)[:60]
    'Embodied carbon, from making the hardware: 104 g CO2e for 10'
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from auditor.ledger import Ledger
from auditor.model.embodied import (
    DEFAULT_LIFETIME_YEARS,
    DEFAULT_UTILIZATION,
    HOURS_PER_YEAR,
    Embodied,
    embodied_for,
)
from auditor.model.units import (
    Metric,
    Unit,
    column_unit,
    format_column,
    format_quantity,
    format_scaled,
    significant,
)

WATER_UNITS = (Unit("mL", 1e-3, "mL"), Unit("L", 1.0, "L"))
METHOD = ("GPU-hours x kg per device / (lifetime_years x 8,760 h x utilization), "
          "Luccioni, Viguier & Ligozat 2022 (BLOOM), JMLR 24(253), section 4.1")
TABLE_SOURCE = "each GPU model's figure from the bundled table (auditor/data/embodied.csv)"
UNKNOWN_MODEL = "GPU model not recorded"


@dataclass(frozen=True)
class EmbodiedSettings:
    """What the report charges embodied carbon with: one figure for every device, or the table.

    Attributes:
        kg_per_device: kg CO2e to make one device with its share of the server; None: each GPU
            model's figure from the bundled table.
        lifetime_years: years a device serves.
        utilization: the share of those years it is busy (0-1].

    Example:
        >>> EmbodiedSettings.from_setting("table", 6, 0.85).table
        True
        >>> round(EmbodiedSettings(462.5).for_model("NVIDIA A100-SXM4-80GB").kg_per_device_hour, 6)
        0.010352
    """

    kg_per_device: float | None
    lifetime_years: float = DEFAULT_LIFETIME_YEARS
    utilization: float = DEFAULT_UTILIZATION

    def __post_init__(self) -> None:
        Embodied(self.kg_per_device or 0.0, self.lifetime_years, self.utilization)  # refuses bad values, by name

    @classmethod
    def from_setting(cls, value: float | str | None, lifetime_years: float = DEFAULT_LIFETIME_YEARS,
                     utilization: float = DEFAULT_UTILIZATION) -> EmbodiedSettings | None:
        """From the ``embodied`` setting (kg per device or ``"table"``); None when it is unset."""
        if value is None:
            return None
        return cls(None if value == "table" else float(value), lifetime_years, utilization)

    @property
    def table(self) -> bool:
        """True when each GPU model is charged its own figure from the bundled table."""
        return self.kg_per_device is None

    def for_model(self, model: str | None) -> Embodied:
        """The figure a GPU-hour of ``model`` is charged (None: a model that was not recorded)."""
        if self.kg_per_device is not None:
            return Embodied(self.kg_per_device, self.lifetime_years, self.utilization)
        return embodied_for(model, "gpu", self.lifetime_years, self.utilization)


def _models(devices_text: str) -> list[str | None]:
    """The GPU models of a stored device list (None for a device without one)."""
    try:
        devices = json.loads(devices_text or "[]")
    except ValueError:
        return []
    if not isinstance(devices, list):
        return []
    return [str(d["model"]) if isinstance(d, dict) and d.get("model") else None for d in devices]


def _charge_by_table(report: dict[str, Any], ledger: Ledger, since: float | None, settings: EmbodiedSettings) -> None:
    """Per sweep, each device list's GPU-hours shared evenly over its devices, each charged at
    its model's figure; a list without devices at the class default."""
    names = {sweep["name"] for sweep in report["sweeps"]}
    per_sweep: dict[str, float] = {name: 0.0 for name in names}
    models: dict[str, dict[str, Any]] = {}
    for sweep, devices_text, seconds in ledger.gpu_seconds_by_devices(since):
        if sweep not in names or not seconds:
            continue
        held = _models(devices_text) or [None]
        for model in held:
            hours = seconds / 3600 / len(held)
            figure = settings.for_model(model)
            co2e = figure.co2e_kg(hours)
            per_sweep[sweep] += co2e
            entry = models.setdefault(model or UNKNOWN_MODEL, {
                "model": model or UNKNOWN_MODEL, "kg_per_device": figure.kg_per_device,
                "kg_per_gpu_hour": figure.kg_per_device_hour, "source": figure.source,
                "is_default": figure.is_default or model is None, "gpu_hours": 0.0, "co2e_kg": 0.0})
            entry["gpu_hours"] += hours
            entry["co2e_kg"] += co2e
    for sweep in report["sweeps"]:
        sweep["embodied_co2e_kg"] = per_sweep[sweep["name"]]
    report["totals"]["embodied_co2e_kg"] = sum(per_sweep.values())
    listed = sorted(models.values(), key=lambda m: -m["gpu_hours"])
    figures = {m["kg_per_device"] for m in listed}
    common = figures.pop() if len(figures) == 1 else None
    report["embodied"] = {
        "kg_per_device": common, "lifetime_years": settings.lifetime_years, "utilization": settings.utilization,
        "kg_per_gpu_hour": common / (settings.lifetime_years * HOURS_PER_YEAR * settings.utilization) if common is not None else None,
        "source": TABLE_SOURCE, "is_default": any(m["is_default"] for m in listed), "method": METHOD,
        "models": listed, "default_gpu_hours": sum(m["gpu_hours"] for m in listed if m["is_default"]),
    }


def add_embodied_and_water(report: dict[str, Any], ledger: Ledger | None, since: float | None,
                           embodied: EmbodiedSettings | None, wue_l_per_kwh: float | None = None) -> None:
    """Add, when set, ``embodied_co2e_kg`` and ``total_co2e_kg`` (operational ``co2e_kg`` +
    embodied) to every sweep and the totals with the inputs under ``embodied``, and ``water_l``
    (IT kWh x WUE) with ``water``. Nothing when neither is set.

    Args:
        report: the report dict (its ``sweeps`` and ``totals``), changed in place.
        ledger: the ledger, for each GPU model's hours (only with the table).
        since: only trials started at or after this time (as the report).
        embodied: what to charge embodied carbon with; None: no embodied figure.
        wue_l_per_kwh: litres of water used on site per IT kWh; None: no water figure.
    """
    rows = [*report["sweeps"], report["totals"]]
    if embodied is not None:
        if embodied.table and ledger is not None:
            _charge_by_table(report, ledger, since, embodied)
        else:
            figure = embodied.for_model(None)
            for row in rows:
                row["embodied_co2e_kg"] = figure.co2e_kg(row["gpu_hours"])
            report["embodied"] = {
                "kg_per_device": figure.kg_per_device, "lifetime_years": figure.lifetime_years,
                "utilization": figure.utilization, "kg_per_gpu_hour": figure.kg_per_device_hour,
                "source": "given" if not embodied.table else figure.source, "is_default": figure.is_default,
                "method": METHOD, "models": [], "default_gpu_hours": report["totals"]["gpu_hours"] if figure.is_default else 0.0,
            }
        for row in rows:
            row["total_co2e_kg"] = row["co2e_kg"] + row["embodied_co2e_kg"]
    if wue_l_per_kwh is not None:
        if not math.isfinite(wue_l_per_kwh) or wue_l_per_kwh < 0:
            raise ValueError(f"wue {wue_l_per_kwh!r} must be a finite number >= 0")
        for row in rows:
            row["water_l"] = row["energy_kwh"] * wue_l_per_kwh
        report["water"] = {"wue_l_per_kwh": wue_l_per_kwh, "basis": "IT kWh x WUE (water used on site)"}


def format_water(litres: float) -> str:
    """Litres of water for people: ``'12.2 L'``, ``'450 mL'``, ``'1,250 L'``.

    Example:
        >>> format_water(12.24), format_water(0.45), format_water(1250.4)
        ('12.2 L', '450 mL', '1,250 L')
    """
    return format_scaled(litres, WATER_UNITS)


def extra_columns(rows: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """The table's embodied and water columns, each in its own one unit, when the report has
    them: ``(header, cells)``.

    Example:
        >>> extra_columns([{"embodied_co2e_kg": 0.0932, "water_l": 0.5}, {"embodied_co2e_kg": 0.1035, "water_l": 7.2}])
        [('embodied g CO2e', ['93', '103']), ('water L', ['0.50', '7.20'])]
        >>> extra_columns([{"co2e_kg": 1.0}])
        []
    """
    columns = []
    if rows and "embodied_co2e_kg" in rows[-1]:
        values = [row.get("embodied_co2e_kg") for row in rows]
        unit = column_unit(Metric.CO2E_KG, values)
        columns.append((f"embodied {unit.symbol}", format_column(values, unit)))
    if rows and "water_l" in rows[-1]:
        values = [row.get("water_l") for row in rows]
        largest = max((abs(v) for v in values if v is not None), default=0.0)
        unit = WATER_UNITS[1] if largest >= 1 or not largest else WATER_UNITS[0]
        columns.append((f"water {unit.symbol}", format_column(values, unit)))
    return columns


CSV_EXTRAS = ("embodied_co2e_kg", "total_co2e_kg", "water_l")


def extra_csv_columns(report: dict[str, Any]) -> list[str]:
    """The CSV's embodied and water columns (at the end, base units), when the report has them."""
    return [key for key in CSV_EXTRAS if key in report["totals"]]


def _inputs(embodied: dict[str, Any]) -> str:
    """The embodied inputs as a phrase: ``462.5 kg per GPU over 6 years at 85 % use``."""
    years, use = significant(embodied["lifetime_years"], 3), significant(100 * embodied["utilization"], 3)
    if embodied["source"] == TABLE_SOURCE:
        per = (f"{significant(embodied['kg_per_device'], 4)} kg per GPU from the bundled table,"
               if embodied["kg_per_device"] is not None else "each GPU model's figure from the bundled table")
    else:
        per = f"{significant(embodied['kg_per_device'], 4)} kg per GPU"
    return f"{per} over {years} years at {use} % use"


def _defaults(embodied: dict[str, Any]) -> str:
    """Which GPU-hours were charged at the class default, said as such."""
    flagged = [m for m in embodied["models"] if m["is_default"]]
    if not flagged:
        return ""
    said = ", ".join(f"{m['model']} ({format_quantity(Metric.GPU_HOURS, m['gpu_hours'])})" for m in flagged)
    kg = significant(flagged[0]["kg_per_device"], 4)
    return (f" No figure is published for {said}: charged at the class default, {kg} kg per GPU "
            "(BLOOM's A100 figure).")


def embodied_sentence(report: dict[str, Any], escape: Any = str) -> str | None:
    """Embodied carbon on its own line: how much, on how many GPU-hours, with what inputs,
    beside the operational figure; GPU-hours charged at a class default named. None when off."""
    embodied, totals = report.get("embodied"), report["totals"]
    if embodied is None:
        return None
    if not totals["gpu_hours"]:
        return escape("Embodied carbon, from making the hardware: none charged. It is charged on GPU-hours, and these "
                      "searches used none; the CPUs and memory they ran on are not charged (no method here covers them).")
    return escape(
        f"Embodied carbon, from making the hardware: {format_quantity(Metric.CO2E_KG, totals['embodied_co2e_kg'])} for "
        f"{format_quantity(Metric.GPU_HOURS, totals['gpu_hours'], long=True)} ({_inputs(embodied)}; Luccioni et al. "
        f"2022's method), beside {format_quantity(Metric.CO2E_KG, totals['co2e_kg'])} operational: "
        f"{format_quantity(Metric.CO2E_KG, totals['total_co2e_kg'])} in all.{_defaults(embodied)}")


def water_sentence(report: dict[str, Any]) -> str | None:
    """The water used on site, with its WUE. None when off."""
    water = report.get("water")
    if water is None:
        return None
    totals = report["totals"]
    return (f"Water used on site: {format_water(totals['water_l'])} ({significant(water['wue_l_per_kwh'], 4)} L per IT kWh "
            f"x {format_quantity(Metric.ENERGY_KWH, totals['energy_kwh'])}).")


def statement_sentence(report: dict[str, Any], escape: Any = str, co2: str = "CO2e") -> str:
    """The statement's sentence on embodied carbon and water, or ``""`` when neither is set:
    ``They also carried 104 g CO2e of embodied emissions from manufacturing the hardware
    (Luccioni et al. 2022's method: 462.5 kg per GPU over 6 years at 85 % use), and used 12.2 L
    of water on site (1.8 L per IT kWh).``"""
    embodied, water, totals = report.get("embodied"), report.get("water"), report["totals"]
    parts, said = [], ""
    if embodied is not None and not totals["gpu_hours"]:
        said = (" Embodied emissions from manufacturing the hardware are not included: they are charged on GPU-hours, "
                "and these searches used none (CPUs are not charged).")
    elif embodied is not None:
        kg = format_quantity(Metric.CO2E_KG, totals["embodied_co2e_kg"], long=True).replace("CO2e", co2)
        parts.append(f"carried {kg} of embodied emissions from manufacturing the hardware "
                     f"(Luccioni et al. 2022's method: {escape(_inputs(embodied))})")
    if water is not None:
        parts.append(f"used {escape(format_water(totals['water_l']))} of water on site "
                     f"({escape(significant(water['wue_l_per_kwh'], 4))} L per IT kWh)")
    if not parts:
        return said
    return said + " They also " + ", and ".join(parts) + "."
