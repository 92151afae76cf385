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


@pytest.mark.parametrize(("text", "code"), [
    ("UK", "GB"), ("Great Britain", "GB"), ("USA", "US"), ("u.s.a.", "US"), ("Deutschland", "DE"),
    ("ÖSTERREICH", "AT"), ("España", "ES"), ("espana", "ES"), ("日本", "JP"), ("Türkiye", "TR"), ("Éire", "IE"),
])
def test_common_aliases_and_native_names_resolve(text: str, code: str) -> None:
    assert resolve_region(text).code == code


def test_every_alias_names_a_country_of_the_table() -> None:
    from auditor.data import read_table

    codes = {r.code for r in country_regions()}
    assert all(row["iso2"] in codes and row["kind"] in ("common English", "endonym") for row in read_table("region_aliases.csv"))


def test_a_country_code_finds_that_country_first_not_every_name_holding_its_letters() -> None:
    us = [r.code for r in search_regions("US")]
    assert us[0] == "US" and not {"AT", "RU", "AU", "BY", "CY"} & set(us)  # Austria, Russia, Australia, Belarus, Cyprus
    assert {"aws:us-east-1", "azure:eastus"} <= set(us)  # its cloud regions
    assert next(r.code for r in search_regions("uk")) == "GB" and search_regions("deutschland")[0].code == "DE"
