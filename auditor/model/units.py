"""Units of energy, mass, carbon intensity, GPU time and money: parsing and formatting.

The canonical units inside the auditor are joules or kWh for energy, kg for CO2e, gCO2e/kWh
for carbon intensity, GPU-hours for device time and US dollars for money.

Example:
    >>> parse_energy_kwh("300 kWh")
    300.0
    >>> round(parse_intensity("0.954 lb/kWh"), 1)
    432.7
    >>> parse_quantity("$1,250").value
    1250.0
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum

from auditor.errors import InvalidInputError

JOULES_PER_KWH = 3.6e6
LB_PER_KG = 2.20462262185
GRAMS_PER_KG = 1000.0

# Factors to the canonical unit, keyed by the unit as SI writes it. Prefixes are case-sensitive:
# m is milli and M mega, so "20 mWh" is 0.02 Wh, never 20 MWh.
ENERGY_TO_KWH = {
    "mJ": 1e-3 / JOULES_PER_KWH,
    "J": 1 / JOULES_PER_KWH,
    "kJ": 1e3 / JOULES_PER_KWH,
    "MJ": 1e6 / JOULES_PER_KWH,
    "GJ": 1e9 / JOULES_PER_KWH,
    "mWh": 1e-6,
    "Wh": 1e-3,
    "kWh": 1.0,
    "MWh": 1e3,
    "GWh": 1e6,
}
MASS_TO_KG = {
    "mg": 1e-6,
    "g": 1e-3,
    "kg": 1.0,
    "t": 1e3,
    "tonne": 1e3,
    "tonnes": 1e3,
    "lb": 1 / LB_PER_KG,
    "lbs": 1 / LB_PER_KG,
}
GPU_HOUR_UNITS = {"gpuh", "gpu-h", "gpu-hour", "gpu-hours", "gpuhour", "gpuhours", "gpu h", "gpu hour", "gpu hours"}
USD_UNITS = {"usd", "$", "dollar", "dollars", "us$"}

_NUMBER = r"[+-]?(?:\d[\d,_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY = re.compile(rf"^\s*(?P<prefix>\$|us\$)?\s*(?P<number>{_NUMBER})\s*(?P<unit>.*?)\s*$", re.I)
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?(?:[eE][+-]?\d+)?$")
_CO2_SUFFIX = re.compile(r"\s*co2(?:e|eq|-eq|-e)?$", re.I)


def unit_factor(unit: str, table: dict[str, float], what: str) -> float | None:
    """The factor of ``unit`` in ``table``: spelled as SI writes it, or in another case where
    that is not ambiguous (``KWH`` is kWh; ``mwh`` could be mWh or MWh and is refused).

    Raises:
        InvalidInputError: the unit matches several entries but for their case.

    Example:
        >>> unit_factor("mWh", ENERGY_TO_KWH, "energy"), unit_factor("KWH", ENERGY_TO_KWH, "energy")
        (1e-06, 1.0)
    """
    if unit in table:
        return table[unit]
    matches = [name for name in table if name.lower() == unit.lower()]
    if len(matches) > 1:
        raise InvalidInputError(
            f"{what} unit {unit!r} is ambiguous: write {' or '.join(sorted(matches, key=table.get))} "
            "(SI prefixes are case-sensitive: m is milli, M is mega)"
        )
    return table[matches[0]] if matches else None


class Metric(str, Enum):
    """What a quantity measures; budgets are set in one of these."""

    CO2E_KG = "co2e_kg"
    ENERGY_KWH = "energy_kwh"
    GPU_HOURS = "gpu_hours"
    COST_USD = "cost_usd"

    @property
    def unit(self) -> str:
        """The unit the metric is shown in."""
        return {"co2e_kg": "kgCO2e", "energy_kwh": "kWh", "gpu_hours": "GPU-h", "cost_usd": "USD"}[
            self.value
        ]


@dataclass(frozen=True)
class Quantity:
    """An amount in a metric's canonical unit (kgCO2e, kWh, GPU-h or USD).

    Example:
        >>> Quantity(Metric.CO2E_KG, 1200.0).describe()
        '1,200 kgCO2e'
    """

    metric: Metric
    value: float

    def describe(self) -> str:
        """The amount with its unit, for messages."""
        return format_amount(self.metric, self.value)


def _split(text: str, what: str, example: str) -> tuple[float, str, bool]:
    """Split ``text`` into a non-negative finite number and its unit (as written)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError(f"empty {what}: give a number with a unit, e.g. {example!r}")
    match = _QUANTITY.match(text)
    if match is None:
        raise InvalidInputError(f"cannot read {what} {text!r}: give a number with a unit, e.g. {example!r}")
    number = match["number"]
    if "," in number and not _THOUSANDS.match(number):
        raise InvalidInputError(
            f"cannot read {what} {text!r}: write decimals with a point ({number.replace(',', '.')!r}); "
            "a comma only separates thousands (1,500)"
        )
    value = float(number.replace(",", "").replace("_", ""))
    if not math.isfinite(value) or value < 0:
        raise InvalidInputError(f"{what} {text!r} must be a finite number >= 0")
    unit = " ".join(match["unit"].split())
    return value, unit, bool(match["prefix"])


def parse_quantity(text: str) -> Quantity:
    """Read a budget-style amount: ``"5 kg"``, ``"1.2 t"``, ``"300 kWh"``, ``"100 GPUh"``, ``"$250"``.

    Raises:
        InvalidInputError: the text is not a number with a known unit.

    Example:
        >>> parse_quantity("1.2 t")
        Quantity(metric=<Metric.CO2E_KG: 'co2e_kg'>, value=1200.0)
    """
    example = "5 kg, 1.2 t, 300 kWh, 100 GPUh, $250"
    value, unit, dollar_prefix = _split(text, "amount", example)
    if dollar_prefix:
        if unit.lower() not in ("", "usd"):
            raise InvalidInputError(f"cannot read amount {text!r}: '$' amounts take no unit after them")
        return Quantity(Metric.COST_USD, value)
    mass = unit_factor(_CO2_SUFFIX.sub("", unit), MASS_TO_KG, "mass")
    if mass is not None:
        return Quantity(Metric.CO2E_KG, value * mass)
    energy = unit_factor(unit, ENERGY_TO_KWH, "energy")
    if energy is not None:
        return Quantity(Metric.ENERGY_KWH, value * energy)
    if unit.lower() in GPU_HOUR_UNITS:
        return Quantity(Metric.GPU_HOURS, value)
    if unit.lower() in USD_UNITS:
        return Quantity(Metric.COST_USD, value)
    if not unit:
        raise InvalidInputError(f"amount {text!r} has no unit: write e.g. {example}")
    if unit.lower() in {"eur", "€", "gbp", "£", "chf", "jpy", "¥"}:
        raise InvalidInputError(f"amount {text!r}: only US dollars are supported, e.g. '$250' or '250 USD'")
    raise InvalidInputError(
        f"unknown unit {unit!r} in {text!r}: use mg, g, kg, t or lb (CO2e), J, Wh, mWh, kWh, MWh or GWh "
        "(energy), GPUh (device time) or USD/$ (money)"
    )


def parse_energy_kwh(text: str) -> float:
    """Read an energy (``"3.6 MJ"``, ``"300 kWh"``) and return kWh.

    Example:
        >>> parse_energy_kwh("3.6 MJ")
        1.0
    """
    quantity = parse_quantity(text)
    if quantity.metric is not Metric.ENERGY_KWH:
        raise InvalidInputError(f"{text!r} is not an energy: use J, kJ, MJ, Wh, mWh, kWh, MWh or GWh")
    return quantity.value


def parse_intensity(text: str) -> float:
    """Read a carbon intensity with its unit and return gCO2e/kWh.

    Accepts a mass unit (g, kg, t, lb, optionally followed by CO2e) over an energy unit
    (Wh, kWh, MWh, J, MJ): ``"545 g/kWh"``, ``"0.954 lb/kWh"``, ``"0.4 kgCO2e/kWh"``,
    ``"900 lb/MWh"``.

    Example:
        >>> parse_intensity("0.4 kg/kWh")
        400.0
    """
    example = "545 g/kWh"
    value, unit, dollar_prefix = _split(text, "intensity", example)
    numerator, slash, denominator = unit.partition("/")
    mass = unit_factor(_CO2_SUFFIX.sub("", numerator.strip()), MASS_TO_KG, "mass") if slash else None
    energy = unit_factor(denominator.strip(), ENERGY_TO_KWH, "energy") if slash else None
    if dollar_prefix or mass is None or energy is None:
        raise InvalidInputError(
            f"cannot read intensity {text!r}: write mass per energy, e.g. '545 g/kWh', "
            "'0.954 lb/kWh' or '0.4 kg/kWh'"
        )
    return value * mass * GRAMS_PER_KG / energy


def format_number(value: float) -> str:
    """A number with as many digits as a reader needs: ``201.1``, ``0.0172``, ``78,468``.

    Example:
        >>> format_number(78468.2), format_number(201.13), format_number(0.017234), format_number(1.2654e-5)
        ('78,468', '201.1', '0.01723', '0.00001265')
    """
    if value is None or not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude == 0:
        return "0"
    if 1e-6 <= magnitude < 1e-3:
        return f"{value:.{3 - math.floor(math.log10(magnitude))}f}"
    return f"{value:.4g}"


def format_share(fraction: float | None) -> str:
    """A fraction as a whole percentage that never reads as none or all when it is not:
    ``"<1%"`` for a little above 0, ``">99%"`` for a little below 1, ``"-"`` for unknown.

    Example:
        >>> format_share(0.003), format_share(0.25), format_share(0.998), format_share(0.0), format_share(None)
        ('<1%', '25%', '>99%', '0%', '-')
    """
    if fraction is None or not math.isfinite(fraction):
        return "-"
    if 0 < fraction < 0.005:
        return "<1%"
    if 0.995 <= fraction < 1:
        return ">99%"
    return f"{fraction:.0%}"


def format_amount(metric: Metric, value: float) -> str:
    """An amount with the unit of its metric, e.g. ``'$250.00'`` or ``'0.0172 kWh'``.

    Example:
        >>> format_amount(Metric.COST_USD, 250)
        '$250.00'
    """
    if metric is Metric.COST_USD:
        return f"${value:,.2f}"
    return f"{format_number(value)} {metric.unit}"
