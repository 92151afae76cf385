"""Where the electricity came from: countries, cloud regions and explicit intensities.

A region is written as an ISO 3166 country code (``DE``, ``DEU``) or name (``Germany``), a
cloud region (``aws:us-east-1``, ``gcp:europe-west4``) or an explicit intensity with its unit
(``545 g/kWh``, ``0.954 lb/kWh``). Cloud regions take their intensity from their country's row
in the country table (yearly average, mostly 2023) and their PUE from the provider where it is
published. An unknown region is an error listing the closest matches: there is no silent
default location.

Example:
    >>> resolve_region("DE").code, resolve_region("DE").g_co2e_per_kwh
    ('DE', 380.9)
    >>> resolve_region("gcp:europe-west4").pue
    1.09
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache

from auditor.data import read_table
from auditor.errors import InvalidInputError, UnknownRegionError
from auditor.model.units import parse_intensity

WORLD_AVERAGE_G_PER_KWH = 475.0
WORLD_AVERAGE_SOURCE = "IEA Global Energy & CO2 Status Report 2019"
EXPLICIT_SOURCE = "given by the user"


@dataclass(frozen=True)
class Region:
    """A resolved region: the carbon intensity of its grid and where that figure comes from.

    Attributes:
        code: how the region is written (``DE``, ``aws:us-east-1``, ``545 g/kWh``).
        name: a readable name (``Germany``, ``aws us-east-1 (Germany)``).
        g_co2e_per_kwh: average carbon intensity of the grid.
        source: where the intensity comes from.
        year: the year the intensity describes, when known.
        pue: the site's published PUE, when known (cloud regions only).
        pue_source: where that PUE comes from.
        is_fallback: True for the world average used when no region is set.
    """

    code: str
    name: str
    g_co2e_per_kwh: float
    source: str
    year: int | None = None
    pue: float | None = None
    pue_source: str | None = None
    is_fallback: bool = False

    def describe_source(self) -> str:
        """One phrase naming the figure's source and year, for reports."""
        return f"{self.source}, {self.year}" if self.year else self.source

    def describe(self) -> str:
        """The region and its figure's source in one phrase, e.g. ``'Germany; Our World in Data ... 2023'``."""
        if self.source == EXPLICIT_SOURCE:
            return self.name
        return f"{self.name}; {self.describe_source()}"


WORLD_AVERAGE = Region(
    code="world",
    name="world average (no region set)",
    g_co2e_per_kwh=WORLD_AVERAGE_G_PER_KWH,
    source=WORLD_AVERAGE_SOURCE,
    year=2019,
    is_fallback=True,
)


@lru_cache(maxsize=1)
def _countries() -> dict[str, Region]:
    """Country regions keyed by alpha-2, alpha-3, and case-folded name and alias."""
    by_key: dict[str, Region] = {}
    for row in read_table("grid_intensity.csv"):
        region = Region(
            code=row["iso2"],
            name=row["country"],
            g_co2e_per_kwh=float(row["g_co2e_per_kwh"]),
            source=row["source"],
            year=int(row["year"]),
        )
        by_key[row["iso2"].upper()] = region
        by_key[row["iso3"].upper()] = region
        by_key[row["country"].casefold()] = region
    for row in read_table("region_aliases.csv"):  # UK, USA, Deutschland, 日本...
        aliased = by_key.get(row["iso2"].upper())
        if aliased is not None:
            by_key.setdefault(row["alias"].casefold(), aliased)
    return by_key


@lru_cache(maxsize=1)
def _alpha3() -> dict[str, str]:
    return {row["iso2"].upper(): row["iso3"].upper() for row in read_table("grid_intensity.csv")}


def alpha3(code: str) -> str | None:
    """The ISO 3166 alpha-3 code of a country given by its alpha-2 code (what CodeCarbon writes).

    Example:
        >>> alpha3("DE"), alpha3("aws:us-east-1")
        ('DEU', None)
    """
    return _alpha3().get(code.upper())


@lru_cache(maxsize=1)
def _cloud_regions() -> dict[str, Region]:
    """Cloud regions keyed by lower-case ``provider:region``."""
    countries = _countries()
    regions: dict[str, Region] = {}
    for row in read_table("cloud_regions.csv"):
        code = f"{row['provider']}:{row['region']}"
        country = countries.get(row["iso2"].upper())
        if country is None:
            continue
        where = ", ".join(p for p in (row["location"], country.name) if p)
        regions[code.lower()] = Region(
            code=code,
            name=f"{row['provider']} {row['region']} ({where})",
            g_co2e_per_kwh=country.g_co2e_per_kwh,
            source=f"{country.name} grid average, {country.source}",
            year=country.year,
            pue=float(row["pue"]) if row["pue"] else None,
            pue_source=(row["pue_source"] or None) if row["pue"] else None,
        )
    return regions


def country_regions() -> list[Region]:
    """Every country in the bundled table, sorted by code."""
    unique = {region.code: region for region in _countries().values()}
    return sorted(unique.values(), key=lambda r: r.code)


def cloud_regions() -> list[Region]:
    """Every cloud region in the bundled table, sorted by code."""
    return sorted(_cloud_regions().values(), key=lambda r: r.code)


def _looks_like_intensity(text: str) -> bool:
    return "/" in text and any(ch.isdigit() for ch in text.split("/")[0])


def resolve_region(text: str) -> Region:
    """Resolve a country code or name, a ``provider:region`` or an intensity with a unit.

    Raises:
        UnknownRegionError: nothing matches; the message lists the closest matches.
        InvalidInputError: an intensity with a unit that cannot be read.

    Example:
        >>> resolve_region("0.954 lb/kWh").g_co2e_per_kwh.__round__(1)
        432.7
        >>> resolve_region("aws:eu-central-1").name
        'aws eu-central-1 (Frankfurt am Main, Germany)'
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("empty region: give a country code (DE), a cloud region (aws:us-east-1) or an intensity (545 g/kWh)")
    text = text.strip()
    if _looks_like_intensity(text):
        g_per_kwh = parse_intensity(text)
        return Region(code=text, name=f"given as {text}", g_co2e_per_kwh=g_per_kwh, source=EXPLICIT_SOURCE)
    if ":" in text:
        region = _cloud_regions().get(text.lower())
        if region is not None:
            return region
        raise UnknownRegionError(f"unknown cloud region {text!r}.{_suggest(text, cloud=True)} See `audit regions`.")
    countries = _countries()
    region = countries.get(text.upper()) or countries.get(text.casefold())
    if region is not None:
        return region
    raise UnknownRegionError(f"unknown region {text!r}.{_suggest(text, cloud=False)} See `audit regions`.")


def _suggest(text: str, *, cloud: bool) -> str:
    """' Did you mean: ...?' with up to three close matches, or ''."""
    if cloud:
        names = {key: region.code for key, region in _cloud_regions().items()}
        keys = difflib.get_close_matches(text.lower(), list(names), n=3, cutoff=0.5)
        labels = [names[key] for key in keys]
    else:
        countries = _countries()
        by_name = {region.name.lower(): region for region in countries.values()}
        keys = difflib.get_close_matches(text.lower(), list(by_name), n=3, cutoff=0.6)
        if len(keys) < 3:
            codes = {key.lower(): region for key, region in countries.items() if len(key) <= 3}
            for key in difflib.get_close_matches(text.lower(), list(codes), n=3, cutoff=0.6):
                name = codes[key].name.lower()
                if name not in keys:
                    keys.append(name)
        labels = [f"{by_name[key].code} ({by_name[key].name})" for key in keys[:3]]
    return f" Did you mean: {', '.join(labels)}?" if labels else ""


def search_regions(text: str | None = None) -> list[Region]:
    """Regions for ``text`` (all when None): the country it names (a code, a name or an alias
    such as ``UK`` or ``Deutschland``) first, then the countries and cloud regions whose code
    contains it or whose name has a word starting with it. ``US`` finds the United States and
    its cloud regions, not Austria or Russia.

    Example:
        >>> [r.code for r in search_regions("europe-west4")]
        ['gcp:europe-west4']
        >>> [r.code for r in search_regions("US")][:2], "AT" in [r.code for r in search_regions("US")]
        (['US', 'aws:us-east-1'], False)
    """
    everything = country_regions() + cloud_regions()
    if not text or not text.strip():
        return everything
    needle = text.strip().casefold()
    countries = _countries()
    named = countries.get(text.strip().upper()) or countries.get(needle)
    word = re.compile(rf"(?<!\w){re.escape(needle)}", re.IGNORECASE)
    found = [r for r in everything
             if (":" in r.code and needle in r.code.casefold()) or r.code.casefold() == needle or word.search(r.name)]
    if named is not None:
        found = [named, *(r for r in found if r != named)]
    return found
