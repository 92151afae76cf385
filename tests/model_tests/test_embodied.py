"""Embodied carbon (issue 16): BLOOM's published figure reproduced from its inputs."""

from __future__ import annotations

import pytest

from auditor.errors import InvalidInputError
from auditor.model.embodied import Embodied, embodied_for
from auditor.model.estimate import estimate

BLOOM_GPU_HOURS = 1_082_990
BLOOM_EMBODIED_T = 11.2  # Luccioni et al. 2022, Table 2


def test_bloom_embodied_figure_within_one_percent() -> None:
    per_gpu = 150 + 2500 / 8  # the A100, and its share of an 8-GPU server
    result = estimate(BLOOM_GPU_HOURS, watts=400, embodied=Embodied(per_gpu, lifetime_years=6, utilization=0.85))
    assert result.embodied_co2e_kg / 1000 == pytest.approx(BLOOM_EMBODIED_T, rel=0.01)
    data = result.to_dict()
    assert data["total_co2e_kg"] == pytest.approx(data["co2e_kg"] + data["embodied_co2e_kg"])
    assert data["co2e_kg"] == estimate(BLOOM_GPU_HOURS, watts=400).footprint.co2e_kg  # operational unchanged


def test_charge_scales_with_device_hours_life_and_use() -> None:
    base = Embodied(100.0, lifetime_years=5, utilization=0.5)
    assert base.co2e_kg(5 * 8760 * 0.5) == pytest.approx(100.0)  # a whole busy life carries the whole device
    assert Embodied(100.0, 10, 0.5).co2e_kg(1000) == pytest.approx(base.co2e_kg(1000) / 2)
    assert Embodied(100.0, 5, 1.0).co2e_kg(1000) == pytest.approx(base.co2e_kg(1000) / 2)


def test_table_figures_name_their_source_and_mark_defaults() -> None:
    a100 = embodied_for("NVIDIA A100-SXM4-80GB")
    assert a100.kg_per_device == 462.5 and not a100.is_default and "Luccioni" in a100.source
    h100 = embodied_for("NVIDIA H100 80GB HBM3")
    assert h100.is_default and "no figure published" in h100.source
    assert "class default" in " ".join(estimate(10, watts=700, embodied=h100).notes)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kg_per_device": -1.0}, "embodied kg"), ({"kg_per_device": 1.0, "lifetime_years": 0.0}, "lifetime"),
    ({"kg_per_device": 1.0, "utilization": 0.0}, "utilization"), ({"kg_per_device": 1.0, "utilization": 1.5}, "utilization"),
])
def test_unusable_inputs_are_one_clear_error(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Embodied(**kwargs)


def test_water_is_it_energy_times_wue() -> None:
    result = estimate(10, watts=500, wue_l_per_kwh=1.8)
    assert result.water_l == pytest.approx(5.0 * 1.8)
    assert result.to_dict()["water_l"] == pytest.approx(9.0)
    assert "water_l" not in estimate(10, watts=500).to_dict()
