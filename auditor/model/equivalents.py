"""Yardsticks for a footprint: the one that fits its size, with its source.

A few milligrams read as centimetres driven by a car, kilograms as kilometres, tonnes as
passenger flights. The figures and their sources are in ``auditor/data/equivalents.csv``.

Example:
    >>> equivalent(0.0000147)
    'about as much CO2e as driving a typical passenger car 5.91 cm (US EPA 2023: 400 g CO2 per mile)'
    >>> equivalent(35_592.0)
    'about as much CO2e as 39.5 passenger flights New York - San Francisco (Strubell et al. 2019: 1,984 lb CO2e each)'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from auditor.data import read_table
from auditor.model.units import Unit, format_scaled, significant

DISTANCE_KM = (Unit("cm", 1e-5, "cm"), Unit("m", 1e-3, "m"), Unit("km", 1.0, "km"))
_CITES = {"car": "US EPA 2023: 400 g CO2 per mile", "flight": "Strubell et al. 2019: 1,984 lb CO2e each"}


@dataclass(frozen=True)
class Yardstick:
    """One thing a footprint is compared with: its CO2e per unit, and from what size it is used."""

    name: str
    kg_co2e: float
    per: str
    use_from_kg: float
    source: str

    @property
    def cite(self) -> str:
        """The source in a few words, for a sentence."""
        return _CITES.get(self.name, self.source)


@lru_cache(maxsize=1)
def yardsticks() -> tuple[Yardstick, ...]:
    """The bundled yardsticks, smallest first.

    Example:
        >>> [y.name for y in yardsticks()]
        ['car', 'flight']
    """
    rows = [Yardstick(r["yardstick"], float(r["kg_co2e"]), r["per"], float(r["use_from_kg"]), r["source"])
            for r in read_table("equivalents.csv")]
    return tuple(sorted(rows, key=lambda y: y.use_from_kg))


def pick_yardstick(co2e_kg: float) -> Yardstick:
    """The yardstick for a footprint of ``co2e_kg``: the largest one it is used from.

    Example:
        >>> pick_yardstick(12.0).name, pick_yardstick(2_000.0).name
        ('car', 'flight')
    """
    fitting = [y for y in yardsticks() if co2e_kg >= y.use_from_kg]
    return fitting[-1] if fitting else yardsticks()[0]


def equivalent(co2e_kg: float | None) -> str | None:
    """The footprint against its yardstick, in words (None for no footprint)."""
    if co2e_kg is None or not math.isfinite(co2e_kg) or co2e_kg <= 0:
        return None
    stick = pick_yardstick(co2e_kg)
    count = co2e_kg / stick.kg_co2e
    if stick.name == "car":
        return f"about as much CO2e as driving a typical passenger car {format_scaled(count, DISTANCE_KM)} ({stick.cite})"
    number = significant(count)
    what = stick.per if number == "1" else stick.per.replace("flight", "flights")
    return f"about as much CO2e as {number} {what} ({stick.cite})"
