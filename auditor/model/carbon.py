"""The carbon and cost model: energy -> facility energy -> CO2e, and GPU-hours or kWh -> money.

::

    facility_kWh = IT_kWh x PUE
    CO2e         = facility_kWh x intensity
    cost         = GPU-hours x price per GPU-hour   or   facility_kWh x price per kWh

Carbon and cost are always derived from stored energy and GPU time, never stored themselves,
so a corrected region or PUE corrects every figure without re-running anything.

With an hourly series (:class:`~auditor.model.series.IntensitySeries`), the intensity of each
piece of work is the series' time-weighted mean over its own interval
(:meth:`CarbonModel.footprint` with ``interval``, :meth:`CarbonModel.footprint_of`): the same
computation for the report and for a budget in CO2e. This is the **location-based** figure, the
default everywhere. A **market-based** factor (``market_intensity``, e.g. a renewable contract's
``"120 g/kWh"``) gives a second figure, ``co2e_market_kg`` = facility kWh x that factor, shown
beside it and labelled, as the Llama 3.1 model card reports both.

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
from auditor.model.series import IntensitySeries
from auditor.model.units import GRAMS_PER_KG, JOULES_PER_KWH, LB_PER_KG, Metric

DEFAULT_PUE = 1.58
DEFAULT_PUE_SOURCE = "global average data-centre PUE (Uptime Institute 2018, as used by Strubell et al. 2019)"


class SeriesUnreadableError(InvalidInputError):
    """A sweep was recorded with an intensity series that cannot be read now."""


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

    ``cost_usd`` is None when no price was given; ``co2e_kg`` is location-based (the grid's
    intensity), ``co2e_market_kg`` market-based (None without a market factor).
    """

    gpu_hours: float
    energy_kwh: float
    facility_kwh: float
    co2e_kg: float
    cost_usd: float | None
    co2e_market_kg: float | None = None

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
        series: the grid's intensity hour by hour; when set, work with an interval is charged
            the series' time-weighted mean over it in place of the region's yearly figure.
        market_g_per_kwh: a market-based factor (contracts, certificates), g/kWh, for the
            second, market-based figure; None: location-based only.
    """

    region: Region = WORLD_AVERAGE
    pue: float | None = None
    price: Price = Price()
    series: IntensitySeries | None = None
    market_g_per_kwh: float | None = None

    def __post_init__(self) -> None:
        if self.pue is not None:
            check_pue(self.pue)
        if self.market_g_per_kwh is not None and (not math.isfinite(self.market_g_per_kwh) or self.market_g_per_kwh < 0):
            raise InvalidInputError(f"market intensity {self.market_g_per_kwh!r} is not usable: give g/kWh >= 0, e.g. '120 g/kWh'")

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

    def intensity(self, interval: tuple[float, float] | None = None, what: str = "the work") -> float:
        """The location-based intensity, g/kWh, of work over ``interval`` (start, end: seconds
        since the epoch): the series' time-weighted mean over it when a series is set, else the
        region's figure (also for work without an interval).

        Raises:
            MissingIntensityError: the series has no value for part of the interval.
        """
        if self.series is not None and interval is not None:
            return self.series.mean(interval[0], interval[1], what)
        return self.region.g_co2e_per_kwh

    def footprint(self, energy_kwh: float, gpu_hours: float, interval: tuple[float, float] | None = None) -> Footprint:
        """The footprint of ``energy_kwh`` of IT energy and ``gpu_hours`` of device time, drawn
        over ``interval`` (start, end) when known (it matters only with a series).

        Raises:
            MissingIntensityError: a series is set and has no value for part of ``interval``.
        """
        facility_kwh = energy_kwh * self.effective_pue
        return Footprint(
            gpu_hours=gpu_hours,
            energy_kwh=energy_kwh,
            facility_kwh=facility_kwh,
            co2e_kg=facility_kwh * self.intensity(interval) / GRAMS_PER_KG,
            cost_usd=self.price.cost(gpu_hours, facility_kwh),
            co2e_market_kg=None if self.market_g_per_kwh is None else facility_kwh * self.market_g_per_kwh / GRAMS_PER_KG,
        )

    def footprint_of(self, work: list[tuple[float, float | None, float, float]], what: str = "the work") -> Footprint:
        """The summed footprint of pieces of work given as ``(start, end, joules, gpu_seconds)``
        (trials, idle stretches: an end of None is the start), each charged at its own
        interval's intensity. The report and a budget in CO2e both sum trials this way.

        Raises:
            MissingIntensityError: the series misses part of some piece's interval; every
                missing stretch is named.

        Example:
            >>> from auditor.model.series import IntensitySeries
            >>> hours = IntensitySeries((0.0, 3600.0), (200.0, 400.0), 3600.0)
            >>> model = CarbonModel(pue=1.5, series=hours)
            >>> fp = model.footprint_of([(1800, 5400, 3.6e6, 0), (0, 1800, 3.6e6, 0)])  # 1 kWh each
            >>> round(fp.facility_kwh, 6), round(fp.co2e_kg, 6)  # 1.5 x 300 g + 1.5 x 200 g
            (3.0, 0.75)
        """
        if self.series is not None:
            self.series.check_covers([(start, start if end is None else end) for start, end, _, _ in work], what)
        joules = sum(j for _, _, j, _ in work)
        gpu_seconds = sum(s for _, _, _, s in work)
        whole = self.footprint(joules / JOULES_PER_KWH, gpu_seconds / 3600.0)
        if self.series is None:
            return whole
        co2e = sum(j / JOULES_PER_KWH * self.effective_pue * self.intensity((start, start if end is None else end))
                   for start, end, j, _ in work) / GRAMS_PER_KG
        return replace(whole, co2e_kg=co2e)

    def to_record(self) -> dict[str, Any]:
        """The model as plain data, kept with a sweep so that every later figure of the sweep
        uses the grid, PUE and price it was run (and budgeted) with.

        Example:
            >>> from auditor.model.regions import resolve_region
            >>> model = CarbonModel(resolve_region("FR"), pue=1.2)
            >>> CarbonModel.from_record(model.to_record()) == model
            True
        """
        record: dict[str, Any] = {"region": asdict(self.region), "pue": self.pue, "price": asdict(self.price)}
        if self.series is not None:
            record["intensity_series"] = self.series.source
        if self.market_g_per_kwh is not None:
            record["market_g_per_kwh"] = self.market_g_per_kwh
        return record

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> CarbonModel:
        """The model :meth:`to_record` wrote.

        Raises:
            InvalidInputError: the data is not such a record.
            SeriesUnreadableError: the record names an intensity series that cannot be read
                now (the report must not fall back to the yearly figure in silence).
        """
        try:
            region = Region(**data["region"])
            if not math.isfinite(float(region.g_co2e_per_kwh)) or region.g_co2e_per_kwh < 0:
                raise ValueError("intensity")
            market = data.get("market_g_per_kwh")
            model = cls(region=region, pue=data.get("pue"), price=Price(**(data.get("price") or {})),
                        market_g_per_kwh=None if market is None else float(market))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"not a recorded carbon model ({exc})") from None
        path = data.get("intensity_series")
        if isinstance(path, str) and path:
            try:
                model = replace(model, series=IntensitySeries.load(path))
            except InvalidInputError as exc:
                raise SeriesUnreadableError(
                    f"{exc}; this sweep ran with that hourly series: put the file back, or give --intensity-series FILE"
                ) from None
        return model

    def with_overrides(self, region: Region | None = None, pue: float | None = None, price: Price | None = None,
                       series: IntensitySeries | None = None, market_g_per_kwh: float | None = None) -> CarbonModel:
        """This model with what the user gave in its place (``None``: keep this model's). A
        region given without a series drops the recorded series (it was another grid's).

        Example:
            >>> CarbonModel(pue=1.1).with_overrides(pue=1.5).effective_pue
            1.5
        """
        kept_series = series if series is not None else (None if region is not None else self.series)
        return replace(self, region=region or self.region, pue=self.pue if pue is None else pue,
                       price=price if price is not None and price.is_set else self.price, series=kept_series,
                       market_g_per_kwh=self.market_g_per_kwh if market_g_per_kwh is None else market_g_per_kwh)


@dataclass(frozen=True)
class Overrides:
    """What a user asked a report or export to use in place of each sweep's recorded settings."""

    region: Region | None = None
    pue: float | None = None
    price: Price | None = None
    series: IntensitySeries | None = None
    market_g_per_kwh: float | None = None

    @property
    def any(self) -> bool:
        """True when anything is overridden."""
        return (self.region is not None or self.pue is not None or (self.price is not None and self.price.is_set)
                or self.series is not None or self.market_g_per_kwh is not None)


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
        replaced = (overrides is not None and (overrides.series is not None or overrides.region is not None))
        if replaced:  # the recorded series gives way to the report's own: no need to read it
            recorded = {key: value for key, value in recorded.items() if key != "intensity_series"}
        try:
            model, origin = CarbonModel.from_record(recorded), "sweep"
        except SeriesUnreadableError:
            raise  # never the yearly figure in silence in place of the hour's
        except InvalidInputError:
            pass  # a damaged record: the default, said as such
    if overrides is not None and overrides.any:
        return model.with_overrides(overrides.region, overrides.pue, overrides.price, overrides.series,
                                    overrides.market_g_per_kwh), "override"
    return model, origin
