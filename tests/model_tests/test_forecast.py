"""The forecast's sentence: a range whose low end is zero reads "0 to X", not "0 kWh to X mWh"."""

from __future__ import annotations

from auditor.model.carbon import CarbonModel
from auditor.model.forecast import describe, project


def test_a_range_from_zero_has_no_unit_on_the_zero() -> None:
    costs = [(1e-6, 0.0), (1e-6, 0.0), (1e-6, 0.0), (1e-6, 0.0), (5e-5, 0.0)]  # one costly first trial
    projection = project(costs, CarbonModel(), planned=500, done=0)  # a plan: none run yet
    assert projection.low is not None and projection.low.co2e_kg == 0.0
    text = describe(projection)
    assert "(0 to " in text and " kg to " not in text and "e-0" not in text
