"""The carbon and cost model: energy -> facility energy -> CO2e, and GPU-hours or kWh -> money.

::

    facility_kWh = IT_kWh x PUE
    CO2e         = facility_kWh x intensity
    cost         = GPU-hours x price per GPU-hour   or   facility_kWh x price per kWh

Carbon and cost are always derived from stored energy and GPU time, never stored themselves,
so a corrected region or PUE corrects every figure without re-running anything.

Example (Strubell et al. 2019, Table 3, Transformer big: 1515.43 W for 84 h):
    >>> from auditor.model.regions import resolve_region
    >>> model = CarbonModel(region=resolve_region("0.954 lb/kWh"), pue=1.58)
    >>> fp = model.footprint(energy_kwh=1515.43 * 84 / 1000, gpu_hours=84)
    >>> round(fp.facility_kwh), round(fp.co2e_lb)
    (201, 192)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from auditor.errors import InvalidInputError
from auditor.model.regions import WORLD_AVERAGE, Region
from auditor.model.units import GRAMS_PER_KG, LB_PER_KG, Metric

DEFAULT_PUE = 1.58
DEFAULT_PUE_SOURCE = "global average data-centre PUE (Uptime Institute 2018, as used by Strubell et al. 2019)"


def check_pue(pue: float) -> float:
    """Return ``pue`` if it is a usable PUE (a finite number >= 1), else raise."""
    if not isinstance(pue, (int, float)) or not math.isfinite(pue) or pue < 1.0:
        raise InvalidInputError(f"PUE {pue!r} is not usable: a PUE is a number >= 1.0 (1.1-1.2 for hyperscale clouds, 1.58 on average)")
    return float(pue)


@dataclass(frozen=True)
class Price:
    """What compute costs: per GPU-hour (cloud bill) or per kWh (own hardware); at most one.

    Example:
        >>> Price(per_kwh=0.12).describe()
        '$0.12 per kWh'
    """

    per_gpu_hour: float | None = None
    per_kwh: float | None = None

    def __post_init__(self) -> None:
        if self.per_gpu_hour is not None and self.per_kwh is not None:
            raise InvalidInputError("give a price per GPU-hour or a price per kWh, not both")
        for value in (self.per_gpu_hour, self.per_kwh):
            if value is not None and (not math.isfinite(value) or value < 0):
                raise InvalidInputError(f"price {value!r} is not usable: give a finite amount >= 0 in USD")

    @property
    def is_set(self) -> bool:
        """True when a price was given."""
        return self.per_gpu_hour is not None or self.per_kwh is not None

    def cost(self, gpu_hours: float, facility_kwh: float) -> float | None:
        """The cost in USD, or None without a price."""
        if self.per_gpu_hour is not None:
            return gpu_hours * self.per_gpu_hour
        if self.per_kwh is not None:
            return facility_kwh * self.per_kwh
        return None

    def describe(self) -> str:
        """The price as a phrase."""
        if self.per_gpu_hour is not None:
            return f"${self.per_gpu_hour:g} per GPU-hour"
        if self.per_kwh is not None:
            return f"${self.per_kwh:g} per kWh"
        return "no price given"


@dataclass(frozen=True)
class Footprint:
    """GPU-hours, energy, carbon and cost of some work, in canonical units.

    ``cost_usd`` is None when no price was given.
    """

    gpu_hours: float
    energy_kwh: float
    facility_kwh: float
    co2e_kg: float
    cost_usd: float | None

    @property
    def co2e_lb(self) -> float:
        """CO2e in pounds."""
        return self.co2e_kg * LB_PER_KG

    def amount(self, metric: Metric) -> float:
        """The figure a budget in ``metric`` is compared with.

        Raises:
            InvalidInputError: a cost is asked for but no price was given.
        """
        if metric is Metric.COST_USD:
            if self.cost_usd is None:
                raise InvalidInputError(
                    "a budget in USD needs a price: set price_per_gpu_hour or price_per_kwh"
                )
            return self.cost_usd
        return {
            Metric.CO2E_KG: self.co2e_kg,
            Metric.ENERGY_KWH: self.energy_kwh,
            Metric.GPU_HOURS: self.gpu_hours,
        }[metric]


@dataclass(frozen=True)
class CarbonModel:
    """Turns measured energy and GPU time into a :class:`Footprint`.

    Attributes:
        region: the grid; the world average when none was set (reports say so).
        pue: the facility's power usage effectiveness; None means the region's published PUE,
            else :data:`DEFAULT_PUE`.
        price: what compute costs, if known.
    """

    region: Region = WORLD_AVERAGE
    pue: float | None = None
    price: Price = Price()

    def __post_init__(self) -> None:
        if self.pue is not None:
            check_pue(self.pue)

    @property
    def effective_pue(self) -> float:
        """The PUE in force: the one given, else the region's published one, else 1.58."""
        if self.pue is not None:
            return self.pue
        return self.region.pue if self.region.pue is not None else DEFAULT_PUE

    @property
    def pue_source(self) -> str:
        """Where the PUE in force comes from."""
        if self.pue is not None:
            return "given"
        if self.region.pue is not None:
            return f"published for {self.region.code} ({self.region.pue_source})"
        return DEFAULT_PUE_SOURCE

    def footprint(self, energy_kwh: float, gpu_hours: float) -> Footprint:
        """The footprint of ``energy_kwh`` of IT energy and ``gpu_hours`` of device time."""
        facility_kwh = energy_kwh * self.effective_pue
        return Footprint(
            gpu_hours=gpu_hours,
            energy_kwh=energy_kwh,
            facility_kwh=facility_kwh,
            co2e_kg=facility_kwh * self.region.g_co2e_per_kwh / GRAMS_PER_KG,
            cost_usd=self.price.cost(gpu_hours, facility_kwh),
        )

    def to_record(self) -> dict[str, Any]:
        """The model as plain data, kept with a sweep so that every later figure of the sweep
        uses the grid, PUE and price it was run (and budgeted) with.

        Example:
            >>> from auditor.model.regions import resolve_region
            >>> model = CarbonModel(resolve_region("FR"), pue=1.2)
            >>> CarbonModel.from_record(model.to_record()) == model
            True
        """
        return {"region": asdict(self.region), "pue": self.pue, "price": asdict(self.price)}

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> CarbonModel:
        """The model :meth:`to_record` wrote.

        Raises:
            InvalidInputError: the data is not such a record.
        """
        try:
            region = Region(**data["region"])
            if not math.isfinite(float(region.g_co2e_per_kwh)) or region.g_co2e_per_kwh < 0:
                raise ValueError("intensity")
            return cls(region=region, pue=data.get("pue"), price=Price(**(data.get("price") or {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"not a recorded carbon model ({exc})") from None

    def with_overrides(self, region: Region | None = None, pue: float | None = None, price: Price | None = None) -> CarbonModel:
        """This model with what the user gave in its place (``None``: keep this model's).

        Example:
            >>> CarbonModel(pue=1.1).with_overrides(pue=1.5).effective_pue
            1.5
        """
        return replace(self, region=region or self.region, pue=self.pue if pue is None else pue,
                       price=price if price is not None and price.is_set else self.price)


@dataclass(frozen=True)
class Overrides:
    """What a user asked a report or export to use in place of each sweep's recorded settings."""

    region: Region | None = None
    pue: float | None = None
    price: Price | None = None

    @property
    def any(self) -> bool:
        """True when anything is overridden."""
        return self.region is not None or self.pue is not None or (self.price is not None and self.price.is_set)


def model_for_sweep(attrs: dict[str, Any] | None, default: CarbonModel,
                    overrides: Overrides | None = None) -> tuple[CarbonModel, str]:
    """The model a sweep's figures use, from the sweep's attributes, and where it comes from:
    ``sweep`` (the settings recorded when it ran), ``report`` (a sweep recorded without them,
    or with a damaged record: ``default``) or ``override`` (``overrides`` over either).

    Example:
        >>> from auditor.model.regions import resolve_region
        >>> ran = CarbonModel(resolve_region("FR"), pue=1.2)
        >>> model_for_sweep({"settings": ran.to_record()}, CarbonModel())[1]
        'sweep'
        >>> model_for_sweep({}, CarbonModel(), Overrides(pue=1.1))[0].effective_pue
        1.1
    """
    recorded = (attrs or {}).get("settings")
    model, origin = default, "report"
    if isinstance(recorded, dict):
        try:
            model, origin = CarbonModel.from_record(recorded), "sweep"
        except InvalidInputError:
            pass  # a damaged record: the default, said as such
    if overrides is not None and overrides.any:
        return model.with_overrides(overrides.region, overrides.pue, overrides.price), "override"
    return model, origin
