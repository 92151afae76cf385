"""The bundled table of device power ratings (TDP) and lookups into it.

Example:
    >>> find_hardware("V100 SXM2").tdp_watts
    300.0
    >>> identify_hardware("Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", kind="cpu").name
    'Intel Xeon Gold 6148'
    >>> identify_hardware("NVIDIA H100 80GB HBM3").tdp_watts
    700.0
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from auditor.data import read_table
from auditor.errors import InvalidInputError, UnknownHardwareError

# Names NVML reports that share no complete row name with the table (substring -> row).
_REPORTED_ALIASES = {
    "h100 80gb hbm3": "H100 SXM",
    "h100 pcie": "H100 PCIe",
    "h100 nvl": "H100 NVL",
    "h200": "H200 SXM",
    "a100-sxm4": "A100 SXM4 80 GB",  # the 40 GB and 80 GB SXM4 cards are both 400 W
    "a100-pcie-40gb": "A100 PCIe 40GB",
    "a100 80gb pcie": "A100 PCIe 80GB",
    "a100-pcie-80gb": "A100 PCIe 80GB",
}

# Words that vendors put in device names but that never tell two models apart.
_NOISE = {"nvidia", "tesla", "geforce", "intel", "amd", "r", "tm", "cpu", "processor", "with"}


@dataclass(frozen=True)
class HardwareSpec:
    """One row of the hardware table: a device model and its thermal design power."""

    name: str
    kind: str
    tdp_watts: float
    source: str


def _tokens(name: str) -> frozenset[str]:
    words = re.split(r"[^a-z0-9+]+", name.lower())
    return frozenset(w for w in words if w and w not in _NOISE)


@lru_cache(maxsize=1)
def hardware_table() -> tuple[HardwareSpec, ...]:
    """Every row of the bundled table."""
    return tuple(
        HardwareSpec(row["name"], row["type"], float(row["tdp_watts"]), row["source"])
        for row in read_table("hardware.csv")
    )


def search_hardware(text: str | None = None, kind: str | None = None) -> list[HardwareSpec]:
    """Rows whose name holds every word of ``text`` (all rows when None), optionally of one kind.

    Example:
        >>> [h.name for h in search_hardware("h100")]
        ['H100 SXM', 'H100 NVL', 'H100 PCIe']
    """
    rows = [h for h in hardware_table() if kind is None or h.kind == kind]
    if not text:
        return rows
    wanted = _tokens(text)
    compact = re.sub(r"[^a-z0-9+]", "", text.lower())
    return [
        h
        for h in rows
        if wanted <= _tokens(h.name) or compact in re.sub(r"[^a-z0-9+]", "", h.name.lower())
    ]


def find_hardware(text: str, kind: str | None = None) -> HardwareSpec:
    """The one device model that ``text`` names, as users type it (``"V100 SXM2"``, ``"a100"``).

    When several rows match and they share one TDP, the first is returned (the figure does not
    depend on the choice); when their TDPs differ, the error lists them.

    Raises:
        UnknownHardwareError: no row or several rows with different TDPs match.
    """
    if not text or not text.strip():
        raise InvalidInputError("empty device model: give one, e.g. --gpu 'A100 SXM4' (see `audit hardware`)")
    matches = search_hardware(text, kind)
    exact = [h for h in matches if _tokens(h.name) == _tokens(text)]
    if exact:
        return exact[0]
    if not matches:
        raise UnknownHardwareError(
            f"no device in the hardware table matches {text!r}: see `audit hardware` for the list, "
            "or give the power draw with --watts"
        )
    if len({h.tdp_watts for h in matches}) > 1:
        listed = ", ".join(f"{h.name} ({h.tdp_watts:g} W)" for h in matches[:6])
        raise UnknownHardwareError(f"{text!r} matches devices with different TDPs: {listed}; name one of them")
    return matches[0]


def identify_hardware(device_name: str, kind: str | None = None) -> HardwareSpec | None:
    """The table row for a name reported by the hardware (NVML, /proc/cpuinfo), or None.

    A row matches when every word of its name appears in the reported name; the most specific
    row (most words) wins.
    """
    lowered = device_name.lower()
    for alias, row_name in _REPORTED_ALIASES.items():
        if alias in lowered:
            return next(h for h in hardware_table() if h.name == row_name)
    reported = _tokens(device_name)
    candidates = [
        h for h in hardware_table() if (kind is None or h.kind == kind) and _tokens(h.name) <= reported
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda h: len(_tokens(h.name)))
