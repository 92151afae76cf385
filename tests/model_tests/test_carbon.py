from __future__ import annotations

import pytest

from auditor.errors import InvalidInputError
from auditor.model.carbon import DEFAULT_PUE, CarbonModel, Footprint, Price
from auditor.model.regions import WORLD_AVERAGE, resolve_region
from auditor.model.units import Metric


def test_strubell_table_3_transformer_big() -> None:
    """84 h at 1515.43 W, PUE 1.58, 0.954 lb/kWh: 201 kWh and 192 lb CO2e (Strubell et al. 2019)."""
    model = CarbonModel(region=resolve_region("0.954 lb/kWh"), pue=1.58)
    fp = model.footprint(energy_kwh=1515.43 * 84 / 1000, gpu_hours=84)
    assert fp.facility_kwh == pytest.approx(201.1, abs=0.1)
    assert fp.co2e_lb == pytest.approx(191.9, abs=0.1)


def test_chain_energy_pue_intensity() -> None:
    model = CarbonModel(region=resolve_region("500 g/kWh"), pue=1.5, price=Price(per_kwh=0.2))
    fp = model.footprint(energy_kwh=10, gpu_hours=4)
    assert fp.facility_kwh == pytest.approx(15)
    assert fp.co2e_kg == pytest.approx(7.5)
    assert fp.cost_usd == pytest.approx(3.0)


def test_cost_per_gpu_hour() -> None:
    fp = CarbonModel(price=Price(per_gpu_hour=2.5)).footprint(energy_kwh=1, gpu_hours=8)
    assert fp.cost_usd == pytest.approx(20.0)


def test_pue_precedence() -> None:
    cloud = resolve_region("gcp:europe-west4")
    assert CarbonModel(region=cloud).effective_pue == pytest.approx(1.09)
    assert CarbonModel(region=cloud, pue=1.3).effective_pue == pytest.approx(1.3)
    assert CarbonModel(region=resolve_region("DE")).effective_pue == DEFAULT_PUE
    assert "Uptime" in CarbonModel().pue_source


def test_default_region_is_world_average_and_flagged() -> None:
    model = CarbonModel()
    assert model.region is WORLD_AVERAGE
    assert model.region.is_fallback
    assert model.region.g_co2e_per_kwh == 475


@pytest.mark.parametrize("pue", [0.9, float("nan"), float("inf"), -1])
def test_bad_pue(pue: float) -> None:
    with pytest.raises(InvalidInputError, match="PUE"):
        CarbonModel(pue=pue)


def test_price_rules() -> None:
    with pytest.raises(InvalidInputError, match="not both"):
        Price(per_gpu_hour=1, per_kwh=1)
    with pytest.raises(InvalidInputError, match="not usable"):
        Price(per_kwh=-1)
    assert Price().cost(1, 1) is None


def test_footprint_amount_needs_price_for_usd() -> None:
    fp = Footprint(gpu_hours=1, energy_kwh=2, facility_kwh=3, co2e_kg=4, cost_usd=None)
    assert fp.amount(Metric.ENERGY_KWH) == 2
    assert fp.amount(Metric.CO2E_KG) == 4
    with pytest.raises(InvalidInputError, match="needs a price"):
        fp.amount(Metric.COST_USD)
