"""The report's hourly grid, market-based figure and what shifting would have saved.

A sweep whose model holds an intensity series (recorded with it, or the report's
``--intensity-series``) is charged trial by trial, each trial and idle stretch at the series'
time-weighted mean over its own interval (:meth:`CarbonModel.footprint_of`, the computation a
budget in CO2e uses too); other sweeps are summed by the database as before. The market-based
figure (``co2e_market_kg``) is the facility energy times the sweep's market factor; the
location-based figure (``co2e_kg``) stays the headline.

Example:
    >>> from auditor.model.carbon import CarbonModel
    >>> grid_description(CarbonModel(market_g_per_kwh=120.0))["market"]["g_co2e_per_kwh"]
    120.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Protocol

from auditor.ledger import Ledger
from auditor.model.carbon import CarbonModel, Footprint
from auditor.model.series import SHIFT_METHOD, best_shift, format_time
from auditor.model.units import (
    JOULES_PER_KWH,
    Metric,
    format_duration,
    format_number,
    format_quantity,
    format_share,
)

BASIS = "location-based"
MARKET_SOURCE = ("market-based: the facility energy x the market factor given for the sweep (contracts, certificates); "
                 "sweeps without one count their location-based figure in the market-based total")


class _Totals(Protocol):
    def footprint(self, model: CarbonModel) -> Footprint: ...


def hourly_footprints(ledger: Ledger, names: list[str], models: Mapping[str, tuple[CarbonModel, str]],
                      totals: Mapping[str, _Totals], since: float | None = None) -> dict[str, Footprint]:
    """Each sweep's footprint: trial by trial where its model has a series, else from its totals.

    Raises:
        MissingIntensityError: a series lacks hours that a sweep's trials ran in (named).
    """
    result: dict[str, Footprint] = {}
    for name in names:
        model = models[name][0]
        whole = totals[name].footprint(model)
        if model.series is None:
            result[name] = whole
            continue
        rows = ledger.intervals(name, since)
        hourly = model.footprint_of([(a, b, j, g) for _, a, b, j, g in rows], what=f"sweep {name}")
        result[name] = replace(whole, co2e_kg=hourly.co2e_kg)  # the database's sums for the rest
    return result


def grid_description(model: CarbonModel) -> dict[str, Any]:
    """What a report says of a model's series and market factor (``None`` where unset)."""
    return {
        "intensity_series": model.series.to_dict() if model.series is not None else None,
        "market": None if model.market_g_per_kwh is None else {"g_co2e_per_kwh": model.market_g_per_kwh, "source": MARKET_SOURCE},
        "co2e_basis": BASIS,
    }


def hourly_region(described: dict[str, Any], model: CarbonModel, footprint: Footprint) -> None:
    """With a series, the sweep's grid is said as the series and its energy-weighted mean
    intensity (the yearly figure of the region is not what was used)."""
    if model.series is None:
        return
    mean = 1000 * footprint.co2e_kg / footprint.facility_kwh if footprint.facility_kwh else model.series.values[0]
    described["region"] = {
        "code": "hourly", "name": f"hourly series ({model.region.name})" if not model.region.is_fallback else "hourly series",
        "g_co2e_per_kwh": mean, "source": f"hourly series {model.series.describe()}; the figure is the sweep's energy-weighted mean",
        "is_fallback": False,
    }


def market_total(footprints: list[Footprint]) -> float | None:
    """The market-based total: each sweep's market figure, or its location-based one without a
    market factor; None when no sweep has one."""
    if all(fp.co2e_market_kg is None for fp in footprints):
        return None
    return sum(fp.co2e_kg if fp.co2e_market_kg is None else fp.co2e_market_kg for fp in footprints)


def shifts(ledger: Ledger, names: list[str], models: Mapping[str, tuple[CarbonModel, str]], window_s: float,
           since: float | None = None) -> dict[str, dict[str, Any] | None]:
    """Per sweep with a series: what its trials would have emitted started at the best time
    within ``window_s`` after they did (:func:`~auditor.model.series.best_shift`); None for a
    sweep without a series or without work.

    Raises:
        MissingIntensityError: a series lacks hours the sweep ran in.
    """
    found: dict[str, dict[str, Any] | None] = {}
    for name in names:
        model = models[name][0]
        if model.series is None:
            found[name] = None
            continue
        pue = model.effective_pue
        spans = [(a, b, j / JOULES_PER_KWH * pue) for _, a, b, j, _ in ledger.intervals(name, since)]
        shift = best_shift(model.series, spans, window_s)
        found[name] = None if shift is None else {
            "window_h": window_s / 3600, "actual_start": min(a for a, _, _ in spans), "best_start": shift.start,
            "best_start_text": format_time(shift.start), "delay_h": shift.offset_s / 3600,
            "co2e_kg": shift.actual_kg, "shifted_co2e_kg": shift.best_kg, "saved_kg": shift.saved_kg,
            "saved_fraction": shift.saved_fraction, "starts_tried": shift.candidates,
            "starts_not_covered": shift.skipped, "method": SHIFT_METHOD,
        }
    return found


def market_sentence(report: dict[str, Any]) -> str | None:
    """Both figures, labelled, when a market-based factor is set (the location-based one stays
    the headline): ``'Location-based: 14.5 g CO2e; market-based: 3.66 g CO2e (120 g/kWh ...).'``"""
    totals = report["totals"]
    market = totals.get("co2e_market_kg")
    if market is None:
        return None
    factors = sorted({s["market"]["g_co2e_per_kwh"] for s in report["sweeps"] if s.get("market")})
    given = ", ".join(f"{format_number(f)} g/kWh" for f in factors)
    partial = "" if all(s.get("market") for s in report["sweeps"]) else "; sweeps without a market factor count their location-based figure"
    return (f"Location-based: {format_quantity(Metric.CO2E_KG, totals['co2e_kg'])} (the grid's intensity); "
            f"market-based: {format_quantity(Metric.CO2E_KG, market)} (market factor {given}{partial}).")


def shift_sentences(report: dict[str, Any]) -> list[str]:
    """Per sweep with a shift figure: ``'lr: started at 2026-01-01 03:00 UTC (2 hours later) it
    would have emitted 41% less (1.2 kg CO2e less).'``, and the method once."""
    said = []
    window = report.get("shift_window_h")
    for sweep in report["sweeps"]:
        shift = sweep.get("shift")
        if not shift:
            continue
        if shift["saved_kg"] <= 0:
            said.append(f"{sweep['name']}: it already started at the cleanest time the series offers within "
                        f"{format_duration(shift['window_h'] * 3600)} ({format_quantity(Metric.CO2E_KG, shift['co2e_kg'])}).")
            continue
        later = format_duration(shift["delay_h"] * 3600)
        said.append(f"{sweep['name']}: started at {shift['best_start_text']} ({later} later) it would have emitted "
                    f"{format_share(shift['saved_fraction'])} less ({format_quantity(Metric.CO2E_KG, shift['shifted_co2e_kg'])} "
                    f"instead of {format_quantity(Metric.CO2E_KG, shift['co2e_kg'])}, "
                    f"{format_quantity(Metric.CO2E_KG, shift['saved_kg'])} saved).")
    if window is not None and not said:
        said.append("No shift figure: give the hour's grid with --intensity-series FILE (or the intensity_series setting).")
    elif said:
        said.append(f"Shift: {SHIFT_METHOD}.")
    return said
