"""Back-of-the-envelope footprint of work described by hours, devices and their power draw.

Reproduces published tables from their inputs. Strubell et al. (2019), Table 3, Transformer
(big) on 8 P100: 1515.43 W in all for 84 h, PUE 1.58, 0.954 lb CO2e/kWh:

Example:
    >>> from auditor.model.carbon import CarbonModel
    >>> from auditor.model.regions import resolve_region
    >>> result = estimate(84, watts=1515.43, model=CarbonModel(resolve_region("0.954 lb/kWh"), pue=1.58))
    >>> round(result.footprint.facility_kwh), round(result.footprint.co2e_lb)
    (201, 192)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from auditor.errors import InvalidInputError
from auditor.model.carbon import CarbonModel, Footprint
from auditor.model.embodied import Embodied
from auditor.model.hardware import HardwareSpec


@dataclass(frozen=True)
class EstimateResult:
    """An estimate, its inputs, and where each figure comes from."""

    hours: float
    watts_per_device: float
    devices: int
    footprint: Footprint
    model: CarbonModel
    power_source: str
    notes: list[str] = field(default_factory=list)
    embodied: Embodied | None = None
    wue_l_per_kwh: float | None = None

    @property
    def embodied_co2e_kg(self) -> float | None:
        """kg CO2e of making the devices, charged for these device-hours (None: not asked)."""
        return self.embodied.co2e_kg(self.footprint.gpu_hours) if self.embodied is not None else None

    @property
    def water_l(self) -> float | None:
        """Litres of water used on site: IT kWh x WUE (None: no WUE given)."""
        return self.footprint.energy_kwh * self.wue_l_per_kwh if self.wue_l_per_kwh is not None else None

    def sources(self) -> dict[str, str]:
        """Where the power, intensity, PUE and price come from."""
        region = self.model.region
        sources = {
            "power": self.power_source,
            "intensity": region.describe(),
            "pue": self.model.pue_source,
            "price": self.model.price.describe(),
        }
        if self.embodied is not None:
            sources["embodied"] = self.embodied.describe()
        if self.wue_l_per_kwh is not None:
            sources["wue"] = f"{self.wue_l_per_kwh:g} L per IT kWh (given)"
        return sources

    def to_dict(self) -> dict[str, Any]:
        """The estimate as the JSON object ``audit estimate --format json`` prints."""
        fp = self.footprint
        return {
            "hours": self.hours,
            "watts_per_device": self.watts_per_device,
            "devices": self.devices,
            "gpu_hours": fp.gpu_hours,
            "energy_kwh": fp.energy_kwh,
            "facility_kwh": fp.facility_kwh,
            "co2e_kg": fp.co2e_kg,
            "co2e_lb": fp.co2e_lb,
            "cost_usd": fp.cost_usd,
            "intensity_g_per_kwh": self.model.region.g_co2e_per_kwh,
            "region": self.model.region.code,
            "pue": self.model.effective_pue,
            **({"embodied_co2e_kg": self.embodied_co2e_kg, "total_co2e_kg": fp.co2e_kg + self.embodied_co2e_kg}
               if self.embodied_co2e_kg is not None else {}),
            **({"water_l": self.water_l} if self.water_l is not None else {}),
            "sources": self.sources(),
            "notes": list(self.notes),
        }


def _positive(value: float, what: str) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidInputError(f"{what} {value!r} must be a finite number >= 0")
    return float(value)


def estimate(
    hours: float,
    *,
    watts: float | None = None,
    hardware: HardwareSpec | None = None,
    devices: int = 1,
    model: CarbonModel | None = None,
    embodied: Embodied | None = None,
    wue_l_per_kwh: float | None = None,
) -> EstimateResult:
    """Footprint of ``devices`` devices drawing ``watts`` each (or their TDP) for ``hours``;
    with ``embodied``, the devices' embodied carbon for those device-hours on its own line; with
    ``wue_l_per_kwh``, the water used on site.

    BLOOM (Luccioni et al. 2022): 1,082,990 GPU-hours, 462.5 kg per GPU, 6 years at 85 %:

        >>> bloom = estimate(1_082_990, watts=400, embodied=Embodied(462.5, 6, 0.85))
        >>> round(bloom.embodied_co2e_kg / 1000, 1)
        11.2

    Raises:
        InvalidInputError: negative or non-finite hours or watts, fewer than one device, or
            neither or both of ``watts`` and ``hardware``.
    """
    if (watts is None) == (hardware is None):
        raise InvalidInputError("give the power draw of one device (watts) or its model, not both")
    if not isinstance(devices, int) or devices < 1:
        raise InvalidInputError(f"device count {devices!r} must be a whole number >= 1")
    hours = _positive(hours, "hours")
    if hardware is not None:
        draw, power_source = hardware.tdp_watts, f"TDP of {hardware.name}: {hardware.source}"
    else:
        draw, power_source = _positive(watts, "watts"), "given"  # type: ignore[arg-type]
    model = model or CarbonModel()
    footprint = model.footprint(energy_kwh=draw * devices * hours / 1000.0, gpu_hours=hours * devices)
    notes = []
    if model.region.is_fallback:
        notes.append(
            f"no region set: the world average {model.region.g_co2e_per_kwh:g} gCO2e/kWh "
            f"({model.region.describe_source()}) is used; set one with --region or AUDITOR_REGION"
        )
    if hardware is not None:
        notes.append("TDP is the rated maximum draw: real draw is often lower, so this is an upper estimate")
    if embodied is not None and embodied.is_default:
        notes.append("no embodied figure is published for this device: the class default is used (see sources)")
    if wue_l_per_kwh is not None:
        _positive(wue_l_per_kwh, "WUE (litres per kWh)")
    return EstimateResult(hours, draw, devices, footprint, model, power_source, notes, embodied, wue_l_per_kwh)
