from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.errors import InvalidInputError
from auditor.model.units import (
    DISPLAY_UNITS,
    LB_PER_KG,
    Metric,
    column_unit,
    format_amount,
    format_column,
    format_cost,
    format_duration,
    format_number,
    format_quantity,
    format_range,
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
    assert format_number(201.13) == "201"
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


SCI_NOTATION = re.compile(r"\d[eE][+-]?\d")


def half_step(printed_number: str) -> float:
    """Half a unit in the last printed digit of ``printed_number`` ('14.7' -> 0.05)."""
    digits = printed_number.replace(",", "")
    return 0.5 * 10 ** -(len(digits.split(".")[1]) if "." in digits else 0)


@given(
    metric=st.sampled_from(list(Metric)),
    value=st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False),
)
def test_parsing_what_the_formatter_prints_gives_the_same_amount_back(metric: Metric, value: float) -> None:
    """What a person reads parses back to the amount within the precision it was printed with."""
    printed = format_amount(metric, value)
    assert not SCI_NOTATION.search(printed), printed
    if printed.startswith("< "):  # too small to print: says the bound it is under
        bound = parse_quantity(printed[2:])
        assert bound.metric is metric and 0 < value < bound.value
        return
    quantity = parse_quantity(printed)
    assert quantity.metric is metric
    number = printed.lstrip("$").split(" ")[0]
    factor = quantity.value / float(number.replace(",", "")) if float(number.replace(",", "")) else 1.0
    tolerance = half_step(number) * factor
    assert abs(quantity.value - value) <= tolerance * (1 + 1e-9) + 2 * math.ulp(max(value, 1.0)), (printed, value)
    if metric is not Metric.COST_USD and value >= DISPLAY_UNITS[metric][0].factor:  # 3 significant digits
        assert quantity.value == pytest.approx(value, rel=5e-3)
    again = parse_quantity(format_amount(metric, quantity.value)).value  # printing what was read changes nothing
    assert again == pytest.approx(quantity.value, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(
    ("metric", "value", "printed"),
    [
        (Metric.CO2E_KG, 0.0000147, "14.7 mg CO2e"),  # the demo on a laptop
        (Metric.CO2E_KG, 3.6e-7, "0.36 mg CO2e"),
        (Metric.CO2E_KG, 1e-12, "< 0.01 mg CO2e"),
        (Metric.CO2E_KG, 0.5, "500 g CO2e"),
        (Metric.CO2E_KG, 35_592.0, "35.6 t CO2e"),  # Strubell et al.'s NAS, 78,468 lb
        (Metric.CO2E_KG, 1_234_567.0, "1,235 t CO2e"),
        (Metric.ENERGY_KWH, 0.00002, "20 mWh"),  # exact: no false zeros
        (Metric.ENERGY_KWH, 0.00001996, "20.0 mWh"),  # rounded: the zero says so
        (Metric.ENERGY_KWH, 201.13, "201 kWh"),
        (Metric.ENERGY_KWH, 656_347.0, "656 MWh"),
        (Metric.GPU_HOURS, 0.0125, "45 GPU-s"),
        (Metric.GPU_HOURS, 0.5, "30 GPU-min"),
        (Metric.GPU_HOURS, 239_952.0, "239,952 GPU-h"),
        (Metric.GPU_HOURS, 0.0, "0 GPU-h"),
        (Metric.COST_USD, 0.0000063, "< $0.01"),
        (Metric.COST_USD, 0.875, "$0.88"),
        (Metric.COST_USD, 1_250.0, "$1,250.00"),
    ],
)
def test_amounts_scale_their_unit(metric: Metric, value: float, printed: str) -> None:
    assert format_quantity(metric, value) == printed


def test_gpu_time_spelled_out_and_parsed() -> None:
    assert format_quantity(Metric.GPU_HOURS, 0.5, long=True) == "30 GPU-minutes"
    assert parse_quantity("30 GPU-minutes").value == pytest.approx(0.5)
    assert parse_quantity("45 GPU-s").value == pytest.approx(0.0125)


def test_a_cost_is_never_zero_when_it_is_not() -> None:
    assert format_cost(0.004) == "< $0.01" and format_cost(0.005) == "$0.01" and format_cost(0) == "$0.00"


def test_durations_and_progress_ranges() -> None:
    assert format_duration(0.0) == "0 seconds"
    assert format_duration(3600.0) == "1 hour"
    assert format_duration(9998 * 86400.0) == "9,998 days"
    assert format_range(Metric.ENERGY_KWH, 0.0000196, 0.00002) == "19.6 of 20 mWh"
    assert format_range(Metric.CO2E_KG, 1500.0, 2000.0) == "1.5 of 2 t CO2e"


@given(values=st.lists(st.one_of(st.none(), st.floats(min_value=0, max_value=1e9, allow_nan=False)), min_size=1,
                       max_size=8),
       metric=st.sampled_from([Metric.CO2E_KG, Metric.ENERGY_KWH, Metric.GPU_HOURS]))
def test_a_column_has_one_unit_and_no_zeros_for_amounts(values: list[float | None], metric: Metric) -> None:
    """Every cell of a column is read in its one unit: within half its last digit of the value,
    or under the bound it prints; a non-zero amount never reads 0."""
    unit = column_unit(metric, values)
    assert unit in DISPLAY_UNITS[metric]
    for value, cell in zip(values, format_column(values, unit), strict=True):
        assert not SCI_NOTATION.search(cell)
        if value is None:
            assert cell == "-"
        elif cell.startswith("< "):
            assert value > 0 and value / unit.factor < float(cell[2:])
        else:
            assert cell != "0" or value == 0
            shown = float(cell.replace(",", ""))
            assert abs(shown - value / unit.factor) <= half_step(cell) * (1 + 1e-9) + 1e-9 * value / unit.factor


def test_a_column_takes_the_unit_of_its_largest_value() -> None:
    values = [0.0000144, 0.0000021, 1e-12]
    unit = column_unit(Metric.CO2E_KG, values)
    assert unit.symbol == "mg CO2e"
    assert format_column(values, unit) == ["14.4", "2.1", "< 0.1"]
