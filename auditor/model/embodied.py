"""Embodied carbon: the emissions of making the hardware a search occupies, charged per device-hour.

A device made with ``E`` kg CO2e (the device plus its share of the server), used for
``lifetime_years`` at ``utilization``, is charged ``E / (lifetime_years x 8,760 h x utilization)``
kg CO2e for each hour a trial holds it. Luccioni et al. (2022) charged BLOOM's training this
way: 150 kg per A100 and 2,500 kg per 8-GPU server (462.5 kg per GPU), 6 years at 85 % use,
giving 11.2 t for 1,082,990 GPU-hours beside 24.7 t of dynamic emissions.

Embodied carbon is always its own figure, never mixed into the operational CO2e.

Example:
    >>> bloom = Embodied(462.5, lifetime_years=6, utilization=0.85)
    >>> round(bloom.co2e_kg(1_082_990) / 1000, 1)   # tonnes, as BLOOM's paper
    11.2
    >>> embodied_for("NVIDIA A100-SXM4-80GB").is_default, embodied_for("NVIDIA H100 80GB HBM3").is_default
    (False, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from auditor.data import read_table
from auditor.errors import InvalidInputError

HOURS_PER_YEAR = 8760.0
DEFAULT_LIFETIME_YEARS = 6.0
DEFAULT_UTILIZATION = 0.85


@dataclass(frozen=True)
class Embodied:
    """How much of a device's manufacturing emissions an hour of its use carries.

    Attributes:
        kg_per_device: kg CO2e to make the device, with its share of the server.
        lifetime_years: years the device is in service.
        utilization: the share of those years it is busy.
        source: where ``kg_per_device`` comes from.
        is_default: True when no figure is published for this device (a class default).
    """

    kg_per_device: float
    lifetime_years: float = DEFAULT_LIFETIME_YEARS
    utilization: float = DEFAULT_UTILIZATION
    source: str = "given"
    is_default: bool = False

    def __post_init__(self) -> None:
        for value, what in ((self.kg_per_device, "embodied kg per device"), (self.lifetime_years, "lifetime in years")):
            if not math.isfinite(value) or value < 0 or (what.startswith("lifetime") and value == 0):
                raise InvalidInputError(f"{what} {value!r} must be a finite number above zero")
        if not math.isfinite(self.utilization) or not 0 < self.utilization <= 1:
            raise InvalidInputError(f"utilization {self.utilization!r} must be above 0 and at most 1 (0.85 is 85 %)")

    @property
    def kg_per_device_hour(self) -> float:
        """kg CO2e charged for one hour of one device."""
        return self.kg_per_device / (self.lifetime_years * HOURS_PER_YEAR * self.utilization)

    def co2e_kg(self, device_hours: float) -> float:
        """Embodied kg CO2e of ``device_hours`` of use."""
        return device_hours * self.kg_per_device_hour

    def describe(self) -> str:
        """The inputs as a phrase, for reports."""
        return (f"{self.kg_per_device:g} kg per device ({self.source}) over {self.lifetime_years:g} years at "
                f"{self.utilization:.0%} use")


@lru_cache(maxsize=1)
def _rows() -> tuple[dict[str, str], ...]:
    return read_table("embodied.csv")


def embodied_for(device_name: str | None, kind: str = "gpu", lifetime_years: float = DEFAULT_LIFETIME_YEARS,
                 utilization: float = DEFAULT_UTILIZATION) -> Embodied:
    """The embodied figure of a device from the bundled table: its own where published, else
    its class's default (marked ``is_default``)."""
    name = (device_name or "").lower()
    rows = [r for r in _rows() if r["type"] == kind]
    row = next((r for r in rows if r["match"] != "*" and r["match"].lower() in name), None)
    row = row or next(r for r in rows if r["match"] == "*")
    return Embodied(float(row["embodied_kg_per_device"]), lifetime_years, utilization,
                    f"{row['breakdown']}: {row['source']}", row["is_default"] == "true")
