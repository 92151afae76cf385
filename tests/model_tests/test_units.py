from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.errors import InvalidInputError
from auditor.model.units import (
    LB_PER_KG,
    Metric,
    format_amount,
    format_number,
    parse_energy_kwh,
    parse_intensity,
    parse_quantity,
)


@pytest.mark.parametrize(
    ("text", "metric", "value"),
    [
        ("5 kg", Metric.CO2E_KG, 5.0),
        ("1.2 t", Metric.CO2E_KG, 1200.0),
        ("500 g", Metric.CO2E_KG, 0.5),
        ("2 kgCO2e", Metric.CO2E_KG, 2.0),
        ("10 lb", Metric.CO2E_KG, 10 / LB_PER_KG),
        ("300 kWh", Metric.ENERGY_KWH, 300.0),
        ("300kwh", Metric.ENERGY_KWH, 300.0),
        ("1 MWh", Metric.ENERGY_KWH, 1000.0),
        ("3.6 MJ", Metric.ENERGY_KWH, 1.0),
        ("500 Wh", Metric.ENERGY_KWH, 0.5),
        ("100 GPUh", Metric.GPU_HOURS, 100.0),
        ("100 GPU-h", Metric.GPU_HOURS, 100.0),
        ("100 GPU hours", Metric.GPU_HOURS, 100.0),
        ("$250", Metric.COST_USD, 250.0),
        ("$1,250.50", Metric.COST_USD, 1250.5),
        ("250 USD", Metric.COST_USD, 250.0),
        ("  250 usd ", Metric.COST_USD, 250.0),
        ("1e3 kWh", Metric.ENERGY_KWH, 1000.0),
    ],
)
def test_parse_quantity(text: str, metric: Metric, value: float) -> None:
    quantity = parse_quantity(text)
    assert quantity.metric is metric
    assert quantity.value == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty amount"),
        ("five kg", "cannot read amount"),
        ("5", "has no unit"),
        ("5 parsecs", "unknown unit 'parsecs'"),
        ("-5 kg", "must be a finite number >= 0"),
        ("inf kWh", "cannot read amount"),
        ("250 EUR", "only US dollars"),
        ("$250 kg", r"'\$' amounts take no unit"),
    ],
)
def test_parse_quantity_rejects_bad_input(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("text", "g_per_kwh"),
    [
        ("545 g/kWh", 545.0),
        ("545 gCO2e/kWh", 545.0),
        ("0.4 kg/kWh", 400.0),
        ("0.954 lb/kWh", 0.954 / LB_PER_KG * 1000),
        ("900 lb/MWh", 900 / LB_PER_KG),
        ("0.5 t/MWh", 500.0),
    ],
)
def test_parse_intensity(text: str, g_per_kwh: float) -> None:
    assert parse_intensity(text) == pytest.approx(g_per_kwh)


@pytest.mark.parametrize("text", ["545", "545 g", "545 kWh/g", "545 g/parsec", "$5/kWh"])
def test_parse_intensity_needs_mass_over_energy(text: str) -> None:
    with pytest.raises(InvalidInputError, match="cannot read intensity"):
        parse_intensity(text)


def test_parse_energy_refuses_other_metrics() -> None:
    with pytest.raises(InvalidInputError, match="not an energy"):
        parse_energy_kwh("5 kg")


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False), st.sampled_from(["kg", "kWh", "GPUh", "USD"]))
def test_parse_quantity_round_trips_any_amount(value: float, unit: str) -> None:
    assert parse_quantity(f"{value!r} {unit}").value == pytest.approx(value)


@given(st.text(max_size=40))
def test_parse_quantity_never_crashes(text: str) -> None:
    try:
        quantity = parse_quantity(text)
    except InvalidInputError as exc:
        assert str(exc)
    else:
        assert math.isfinite(quantity.value) and quantity.value >= 0


def test_formatting() -> None:
    assert format_number(78468.2) == "78,468"
    assert format_number(201.13) == "201.1"
    assert format_number(0.0172) == "0.0172"
    assert format_number(0) == "0"
    assert format_amount(Metric.COST_USD, 1250) == "$1,250.00"
    assert format_amount(Metric.GPU_HOURS, 12.5) == "12.5 GPU-h"
