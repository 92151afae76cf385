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


@pytest.mark.parametrize(
    ("text", "metric", "value"),
    [
        ("20 mWh", Metric.ENERGY_KWH, 20e-6),  # milli, not mega: the demo's own budget
        ("20 MWh", Metric.ENERGY_KWH, 20_000.0),
        ("2 GWh", Metric.ENERGY_KWH, 2e6),
        ("2 KWH", Metric.ENERGY_KWH, 2.0),  # another case, where it is not ambiguous
        ("500 mJ", Metric.ENERGY_KWH, 0.5 / 3.6e6),
        ("12 mg", Metric.CO2E_KG, 12e-6),
        ("12 mgCO2e", Metric.CO2E_KG, 12e-6),
        ("1,500 kg", Metric.CO2E_KG, 1500.0),  # a thousands separator
    ],
)
def test_si_prefixes_are_case_sensitive(text: str, metric: Metric, value: float) -> None:
    quantity = parse_quantity(text)
    assert quantity.metric is metric
    assert quantity.value == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,5 kg", "write decimals with a point ('1.5')"),
        ("0,25 kWh", "write decimals with a point ('0.25')"),
        ("1,50 t", "a comma only separates thousands"),
        ("3 mwh", "'mwh' is ambiguous: write mWh or MWh"),
        ("3 MJ/kwh", None),
    ],
)
def test_a_decimal_comma_or_an_ambiguous_prefix_is_refused_with_a_hint(text: str, message: str | None) -> None:
    with pytest.raises(InvalidInputError) as error:
        parse_quantity(text)
    if message:
        assert message in str(error.value)


def test_intensities_take_the_same_units() -> None:
    assert parse_intensity("450 g/kWh") == pytest.approx(450.0)
    assert parse_intensity("450 kg/MWh") == pytest.approx(450.0)
    assert parse_intensity("0.45 mg/Wh") == pytest.approx(0.45e-3 / 1e-3)
    with pytest.raises(InvalidInputError, match="ambiguous"):
        parse_intensity("450 g/mwh")
    with pytest.raises(InvalidInputError, match="decimals with a point"):
        parse_intensity("0,4 kg/kWh")


@given(
    metric=st.sampled_from(list(Metric)),
    value=st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False),
)
def test_parsing_what_the_formatter_prints_gives_the_same_amount_back(metric: Metric, value: float) -> None:
    printed = format_amount(metric, value)
    quantity = parse_quantity(printed)
    assert quantity.metric is metric
    if metric is Metric.COST_USD:
        # within half a cent, and the floats' own spacing ($0.875 prints $0.88: 0.005 plus 4e-18 away)
        assert quantity.value == pytest.approx(value, abs=0.005 + 2 * math.ulp(max(value, 1.0)))
    else:
        assert quantity.value == pytest.approx(value, rel=5e-4, abs=1e-300)
    assert format_amount(metric, quantity.value) == printed
