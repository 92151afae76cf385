"""Rebuild the reference tables bundled in ``auditor/data`` from ``shared/data``.

The raw tables (Our World in Data grid intensities, the ML CO2 Impact calculator's cloud
regions and hardware TDPs) are normalised here once, so that the package needs no country
library at run time: every row gets ISO alpha-2 and alpha-3 codes, a source and a year.

Usage::

    python scripts/build_reference_data.py --source ../shared/data

Needs ``pycountry`` (in the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import pycountry

OWID_SOURCE = "Our World in Data (Ember, Energy Institute)"
MLCO2_SOURCE = "ML CO2 Impact calculator data (Lacoste et al. 2019), MIT"
PACKAGE_DATA = Path(__file__).resolve().parent.parent / "auditor" / "data"

# Country names in the cloud table that pycountry does not know under that spelling.
COUNTRY_ALIASES = {"USA": "US", "South Korea": "KR", "Hong Kong": "HK", "Taiwan": "TW"}

# Rows the raw hardware table lacks (see shared/data/README.md), with their datasheets.
EXTRA_HARDWARE = [
    ("H100 PCIe", "gpu", 350, "https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet"),
    ("A100 PCIe 80GB", "gpu", 300, "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf"),
    ("H200 SXM", "gpu", 700, "https://www.nvidia.com/en-us/data-center/h200/"),
]
RENAMED = {"A100 PCIe 40/80GB": "A100 PCIe 40GB"}  # 250 W is the 40GB card; the 80GB row is added
MISSING_SOURCES = {"A10G": "https://aws.amazon.com/ec2/instance-types/g5/ (NVIDIA A10G, 150 W)"}


def _iso2(country: str) -> str:
    if country in COUNTRY_ALIASES:
        return COUNTRY_ALIASES[country]
    return pycountry.countries.lookup(country).alpha_2


def build_grid(source: Path) -> list[dict[str, str]]:
    rows = []
    with (source / "grid_intensity_by_country.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            country = pycountry.countries.get(alpha_3=row["iso3"])
            if country is None:
                continue  # aggregates (regions, continents) carry no ISO code
            rows.append(
                {
                    "iso2": country.alpha_2,
                    "iso3": row["iso3"],
                    "country": row["country"],
                    "year": row["year"],
                    "g_co2e_per_kwh": f"{float(row['g_co2e_per_kwh']):.1f}",
                    "source": OWID_SOURCE,
                }
            )
    return sorted(rows, key=lambda r: r["iso2"])


def build_cloud(source: Path) -> list[dict[str, str]]:
    rows = []
    with (source / "cloud_regions.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if not row["region"].strip():
                continue  # a provider without a named region cannot be addressed
            location = ", ".join(p for p in (row["state"], row["city"]) if p.strip())
            rows.append(
                {
                    "provider": row["provider"].strip().lower(),
                    "region": row["region"].strip(),
                    "iso2": _iso2(row["country"].strip()),
                    "location": location,
                    "provider_g_co2e_per_kwh": row["impact"].strip(),
                    "provider_source": " ".join(row["source"].split()) or MLCO2_SOURCE,
                    "pue": row["PUE"].strip(),
                    "pue_source": row["PUE source"].strip(),
                }
            )
    return rows


def build_hardware(source: Path) -> list[dict[str, str]]:
    rows = []
    with (source / "hardware_tdp.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            name = RENAMED.get(row["name"].strip(), row["name"].strip())
            rows.append(
                {
                    "name": name,
                    "type": row["type"].strip(),
                    "tdp_watts": row["tdp_watts"].strip(),
                    "source": (row["source"] or "").strip() or MISSING_SOURCES.get(name, MLCO2_SOURCE),
                }
            )
    for name, kind, watts, url in EXTRA_HARDWARE:
        rows.append({"name": name, "type": kind, "tdp_watts": str(watts), "source": url})
    return rows


def write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    write(PACKAGE_DATA / "grid_intensity.csv", build_grid(args.source))
    write(PACKAGE_DATA / "cloud_regions.csv", build_cloud(args.source))
    write(PACKAGE_DATA / "hardware.csv", build_hardware(args.source))


if __name__ == "__main__":
    main()
