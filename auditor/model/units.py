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
# GPU time in smaller units, as the human formats print it (GPU-seconds, GPU-minutes), in GPU-hours
GPU_TIME_TO_HOURS = {
    **{unit: 1 / 3600 for unit in ("gpu-s", "gpus", "gpu s", "gpu-sec", "gpu-second", "gpu-seconds")},
    **{unit: 1 / 60 for unit in ("gpu-min", "gpu min", "gpu-minute", "gpu-minutes", "gpu minute", "gpu minutes")},
}
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
            f"{what} unit {unit!r} is ambiguous: write {' or '.join(sorted(matches, key=lambda name: table[name]))} "
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
        '1.2 t CO2e'
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
    if unit.lower() in GPU_TIME_TO_HOURS:
        return Quantity(Metric.GPU_HOURS, value * GPU_TIME_TO_HOURS[unit.lower()])
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


# --- Formatting for people ------------------------------------------------------------------
#
# Every human view (terminal, Markdown, statement, HTML, logs, progress line) prints amounts
# through the functions below, so one number reads the same everywhere. JSON and CSV keep the
# canonical units at full precision and never come here.
#
# The rules:
# - an amount takes the largest unit it is at least 1 of (mg, g, kg, t CO2e; mWh, Wh, kWh,
#   MWh; GPU-s, GPU-min, GPU-h), with 3 significant digits (``14.7 mg CO2e``, ``1.23 kWh``);
#   past the largest unit, whole numbers with thousands separators (``1,234 t CO2e``);
# - trailing zeros are kept only where the rounding dropped digits: ``20 mWh`` is 20 mWh,
#   ``20.0 mWh`` is 19.95 to 20.05 mWh;
# - below 1 of the smallest unit, 2 significant digits down to 0.01 (``0.36 mg CO2e``), and
#   ``< 0.01 mg CO2e`` below that: never a row of zeros, never scientific notation;
# - money is US dollars to the cent (``$12.50``, ``$1,250.00``), as papers and bills write it;
#   a cost under half a cent is ``< $0.01`` rather than a misleading ``$0.00``;
# - a table column takes ONE unit, the one its largest value takes, with the decimals that give
#   that value 3 significant digits (at most 2), so rows compare; a value too small to show at
#   those decimals reads ``< 0.1`` (or ``< 1``, ``< 0.01``), never ``0.0``.


@dataclass(frozen=True)
class Unit:
    """A display unit: its symbol, how many canonical units one of it is, and its long name.

    Example:
        >>> pick_unit(Metric.ENERGY_KWH, 0.0000196)
        Unit(symbol='mWh', factor=1e-06, long='mWh')
    """

    symbol: str
    factor: float
    long: str


DISPLAY_UNITS: dict[Metric, tuple[Unit, ...]] = {
    Metric.CO2E_KG: (Unit("mg CO2e", 1e-6, "mg CO2e"), Unit("g CO2e", 1e-3, "g CO2e"),
                     Unit("kg CO2e", 1.0, "kg CO2e"), Unit("t CO2e", 1e3, "t CO2e")),
    Metric.ENERGY_KWH: (Unit("mWh", 1e-6, "mWh"), Unit("Wh", 1e-3, "Wh"), Unit("kWh", 1.0, "kWh"),
                        Unit("MWh", 1e3, "MWh")),
    Metric.GPU_HOURS: (Unit("GPU-s", 1 / 3600, "GPU-seconds"), Unit("GPU-min", 1 / 60, "GPU-minutes"),
                       Unit("GPU-h", 1.0, "GPU-hours")),
}
DURATION_UNITS = (Unit("s", 1.0, "seconds"), Unit("min", 60.0, "minutes"), Unit("h", 3600.0, "hours"),
                  Unit("days", 86400.0, "days"))
_CANONICAL = {Metric.CO2E_KG: 2, Metric.ENERGY_KWH: 2, Metric.GPU_HOURS: 2}  # what a zero is shown in


def _choose(units: tuple[Unit, ...], magnitude: float) -> int:
    """Index of the largest unit that ``magnitude`` is at least 1 of (the smallest if none)."""
    index = 0
    for i, unit in enumerate(units):
        if magnitude >= unit.factor * (1 - 1e-12):
            index = i
    return index


def pick_unit(metric: Metric, value: float) -> Unit:
    """The unit an amount of ``metric`` reads best in (the largest it is at least 1 of).

    Example:
        >>> pick_unit(Metric.CO2E_KG, 0.0147).symbol, pick_unit(Metric.GPU_HOURS, 0.5).symbol
        ('g CO2e', 'GPU-min')
    """
    units = DISPLAY_UNITS[metric]
    if not value or not math.isfinite(value):
        return units[_CANONICAL[metric]]
    return units[_choose(units, abs(value))]


def significant(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, in plain decimals with thousands separators;
    trailing zeros only where the rounding dropped digits.

    Example:
        >>> significant(14.7123), significant(20.0), significant(19.96), significant(0.000123456), significant(78468.2)
        ('14.7', '20', '20.0', '0.000123', '78,468')
    """
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    exponent = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - exponent)
    rounded = round(value, decimals)
    if rounded and math.floor(math.log10(abs(rounded))) > exponent:  # 9.996 -> 10.0, not 10.00
        decimals = max(0, decimals - 1)
        rounded = round(value, decimals)
    text = f"{rounded:,.{decimals}f}"
    if decimals and abs(rounded - value) <= 1e-9 * abs(value):  # nothing dropped: no false precision
        text = text.rstrip("0").rstrip(".")
    return text


def _scaled(value: float, units: tuple[Unit, ...], digits: int, long: bool, zero: Unit) -> str:
    """``value`` (in canonical units) with the unit of ``units`` that fits it."""
    if value == 0:
        return f"0 {zero.long if long else zero.symbol}"
    index = _choose(units, abs(value))
    while True:
        unit = units[index]
        scaled = value / unit.factor
        name = unit.long if long else unit.symbol
        if index == 0 and abs(scaled) < 1:  # below the smallest unit
            return f"< 0.01 {name}" if abs(scaled) < 0.005 else f"{significant(scaled, 2)} {name}"
        text = significant(scaled, digits)
        shown = abs(float(text.replace(",", ""))) * unit.factor
        if index + 1 < len(units) and shown >= units[index + 1].factor * (1 - 1e-12):
            index += 1  # 999.7 mg rounds to 1,000 mg: say 1 g
            continue
        return f"{text} {name}"


def format_scaled(value: float, units: tuple[Unit, ...], long: bool = False) -> str:
    """``value`` (in the units' canonical unit) in whichever of ``units`` (ascending) fits it,
    by the rules above: for quantities other than the metrics', such as a distance.

    Example:
        >>> km = (Unit("cm", 1e-5, "cm"), Unit("m", 1e-3, "m"), Unit("km", 1.0, "km"))
        >>> format_scaled(0.0000592, km), format_scaled(0.25, km), format_scaled(1234.5, km)
        ('5.92 cm', '250 m', '1,234 km')
    """
    if not math.isfinite(value):
        return "-"
    return _scaled(value, units, 3, long, units[-1])


def format_quantity(metric: Metric, value: float | None, digits: int = 3, long: bool = False) -> str:
    """An amount for people, in the unit that fits it: ``'14.7 mg CO2e'``, ``'19.6 mWh'``,
    ``'3.5 GPU-min'``, ``'$12.50'``; ``long`` spells GPU time out (``'3.5 GPU-minutes'``).
    ``'-'`` for an unknown amount.

    Example:
        >>> format_quantity(Metric.CO2E_KG, 0.0000147), format_quantity(Metric.ENERGY_KWH, 0.00002)
        ('14.7 mg CO2e', '20 mWh')
        >>> format_quantity(Metric.CO2E_KG, 35.6e3), format_quantity(Metric.GPU_HOURS, 9998 * 24)
        ('35.6 t CO2e', '239,952 GPU-h')
        >>> format_quantity(Metric.CO2E_KG, 3.6e-7), format_quantity(Metric.COST_USD, 0.0000063)
        ('0.36 mg CO2e', '< $0.01')
    """
    if value is None or not math.isfinite(value):
        return "-"
    if metric is Metric.COST_USD:
        return format_cost(value)
    units = DISPLAY_UNITS[metric]
    return _scaled(value, units, digits, long, units[_CANONICAL[metric]])


def format_cost(usd: float | None) -> str:
    """Money as papers and bills write it: to the cent, ``'< $0.01'`` for less than half a
    cent (not ``'$0.00'``), ``'-'`` when no price was given.

    Example:
        >>> format_cost(1250), format_cost(0.875), format_cost(0.0000063), format_cost(0), format_cost(None)
        ('$1,250.00', '$0.88', '< $0.01', '$0.00', '-')
    """
    if usd is None or not math.isfinite(usd):
        return "-"
    if 0 < abs(usd) < 0.005:
        return "< $0.01"
    return f"${usd:,.2f}"


def format_duration(seconds: float, long: bool = True) -> str:
    """A span of time in the unit that fits it: ``'21.3 seconds'``, ``'4.5 minutes'``,
    ``'2.3 hours'``, ``'3.12 days'`` (``long=False``: s, min, h, days).

    Example:
        >>> format_duration(21.3), format_duration(270), format_duration(8280), format_duration(2.7e5, long=False)
        ('21.3 seconds', '4.5 minutes', '2.3 hours', '3.12 days')
    """
    if not math.isfinite(seconds):
        return "-"
    text = _scaled(seconds, DURATION_UNITS, 3, long, DURATION_UNITS[0])
    return text[:-1] if text.startswith("1 ") and text.endswith("s") and long else text  # 1 hour


def format_range(metric: Metric, spent: float, limit: float) -> str:
    """Spent against a limit, both in the limit's unit, for a progress line:
    ``'19.6 of 20 mWh'``; money ``'$1.20 of $5.00'``.

    Example:
        >>> format_range(Metric.ENERGY_KWH, 0.0000196, 0.00002)
        '19.6 of 20 mWh'
    """
    if metric is Metric.COST_USD:
        return f"{format_cost(spent)} of {format_cost(limit)}"
    unit = pick_unit(metric, limit)
    return f"{significant(spent / unit.factor)} of {significant(limit / unit.factor)} {unit.symbol}"


def column_unit(metric: Metric, values: list[float | None]) -> Unit:
    """The one unit for a table column of ``metric``: the one its largest value takes.

    Example:
        >>> column_unit(Metric.CO2E_KG, [0.0000144, 0.0000021, None]).symbol
        'mg CO2e'
    """
    finite_values = [abs(v) for v in values if v is not None and math.isfinite(v)]
    return pick_unit(metric, max(finite_values, default=0.0))


def format_column(values: list[float | None], unit: Unit) -> list[str]:
    """The cells of a column in ``unit``: the decimals that give its largest value 3
    significant digits (at most 2), the same for every row so they compare; a value too small
    for those decimals reads ``'< 0.1'`` (never ``'0.0'``), an unknown one ``'-'``.

    Example:
        >>> format_column([14.4e-6, 2.1e-6, 0.01e-6, 0.0, None], column_unit(Metric.CO2E_KG, [14.4e-6]))
        ['14.4', '2.1', '< 0.1', '0', '-']
        >>> format_column([1234.5, 12.0], Unit("GPU-h", 1.0, "GPU-hours"))
        ['1,234', '12']
        >>> format_column([100.0, 0.5], Unit("kg CO2e", 1.0, "kg CO2e"))  # never a '0' for half a unit
        ['100', '< 1']
    """
    scaled = [v / unit.factor if v is not None and math.isfinite(v) else None for v in values]
    largest = max((abs(v) for v in scaled if v is not None), default=0.0)
    decimals = min(2, max(0, 2 - math.floor(math.log10(largest)))) if largest else 0
    cells = []
    for original, value in zip(values, scaled, strict=True):
        if value is None:
            cells.append("-")
        elif original == 0:
            cells.append("0")
        elif float(f"{abs(value):.{decimals}f}") == 0:  # rounds to zero (0.5 too: half to even)
            cells.append("< " + (f"{10 ** -decimals:.{decimals}f}" if decimals else "1"))
        else:
            cells.append(f"{value:,.{decimals}f}")
    return cells


def format_number(value: float) -> str:
    """A plain number with 3 significant digits and no scientific notation, for figures
    without a unit to scale (ratios, watts): ``201``, ``0.0172``, ``78,468``.

    Example:
        >>> format_number(78468.2), format_number(201.13), format_number(0.017234), format_number(0)
        ('78,468', '201', '0.0172', '0')
    """
    if value is None or not math.isfinite(value):
        return str(value)
    return significant(value, 3)


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
    """An amount with its unit for messages and logs: :func:`format_quantity`.

    Example:
        >>> format_amount(Metric.COST_USD, 250), format_amount(Metric.ENERGY_KWH, 0.0000196)
        ('$250.00', '19.6 mWh')
    """
    return format_quantity(metric, value)
