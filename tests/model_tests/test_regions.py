from __future__ import annotations

import pytest

from auditor.errors import InvalidInputError, UnknownRegionError
from auditor.model.regions import cloud_regions, country_regions, resolve_region, search_regions


@pytest.mark.parametrize("text", ["DE", "de", "DEU", "deu", "Germany", " germany "])
def test_country_by_alpha2_alpha3_and_name(text: str) -> None:
    region = resolve_region(text)
    assert region.code == "DE"
    assert region.name == "Germany"
    assert 200 < region.g_co2e_per_kwh < 600
    assert region.year is not None and region.year >= 2021
    assert "Our World in Data" in region.source


def test_every_bundled_row_has_source_and_year() -> None:
    countries = country_regions()
    assert len(countries) > 200
    assert all(r.source and r.year for r in countries)
    clouds = cloud_regions()
    assert len(clouds) > 70
    assert all(r.source and r.year for r in clouds)


def test_cloud_region_uses_its_country_and_published_pue() -> None:
    region = resolve_region("gcp:europe-west4")
    netherlands = resolve_region("NL")
    assert region.g_co2e_per_kwh == netherlands.g_co2e_per_kwh
    assert region.pue == pytest.approx(1.09)
    assert "Netherlands" in region.name
    assert resolve_region("AWS:US-EAST-1").code == "aws:us-east-1"
    assert resolve_region("aws:us-east-1").pue is None


def test_explicit_intensity() -> None:
    region = resolve_region("545 g/kWh")
    assert region.g_co2e_per_kwh == 545
    assert region.describe() == "given as 545 g/kWh"


def test_unknown_region_lists_close_matches() -> None:
    with pytest.raises(UnknownRegionError) as info:
        resolve_region("Germny")
    message = str(info.value)
    assert "unknown region 'Germny'" in message
    assert "DE (Germany)" in message
    assert "audit regions" in message


def test_unknown_cloud_region_lists_close_matches() -> None:
    with pytest.raises(UnknownRegionError, match="aws:us-east-1"):
        resolve_region("aws:us-eest-1")


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_region(text: str) -> None:
    with pytest.raises(InvalidInputError, match="empty region"):
        resolve_region(text)


def test_search_regions() -> None:
    assert [r.code for r in search_regions("europe-west4")] == ["gcp:europe-west4"]
    codes = {r.code for r in search_regions("france")}
    assert {"FR", "azure:francecentral"} <= codes
    assert search_regions("zzzz") == []
    assert len(search_regions()) == len(country_regions()) + len(cloud_regions())
