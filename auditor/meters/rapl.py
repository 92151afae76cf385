"""Intel/AMD RAPL energy counters under Linux powercap (``/sys/class/powercap``).

Example:
    >>> status = probe_rapl(Path("/nonexistent"))
    >>> status.available, status.reason.startswith("no RAPL")
    (False, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

POWERCAP_ROOT = Path("/sys/class/powercap")


@dataclass(frozen=True)
class RaplDomain:
    """One RAPL zone: ``package-0``, ``dram``, ``core``..., and whether its counter can be read."""

    name: str
    path: Path
    readable: bool
    error: str | None = None


@dataclass(frozen=True)
class RaplStatus:
    """Which RAPL zones exist here and can be read, or why none can."""

    available: bool
    domains: list[RaplDomain] = field(default_factory=list)
    reason: str | None = None
    hint: str | None = None


def _read_domain(zone: Path) -> RaplDomain:
    try:
        name = (zone / "name").read_text().strip()
    except OSError:
        name = zone.name
    counter = zone / "energy_uj"
    try:
        int(counter.read_text().strip())
        return RaplDomain(name, counter, True)
    except PermissionError:
        return RaplDomain(name, counter, False, "root-only")
    except (OSError, ValueError) as exc:
        return RaplDomain(name, counter, False, getattr(exc, "strerror", None) or str(exc))


def probe_rapl(root: Path = POWERCAP_ROOT) -> RaplStatus:
    """List the RAPL zones under ``root`` and try to read each counter once."""
    zones = sorted(p for p in root.glob("intel-rapl:*") if p.is_dir()) if root.is_dir() else []
    if not zones:
        return RaplStatus(
            False,
            reason=f"no RAPL zones under {root} (common in cloud VMs and on non-x86 CPUs)",
            hint="CPU energy will be estimated from CPU time x TDP",
        )
    domains = [_read_domain(zone) for zone in zones]
    if any(d.readable for d in domains):
        return RaplStatus(True, domains=domains)
    first = domains[0]
    if first.error == "root-only":
        return RaplStatus(
            False,
            domains=domains,
            reason=f"{first.path} is root-only",
            hint=f"CPU energy will be estimated. To measure it: sudo chmod a+r {root}/intel-rapl:*/energy_uj {root}/intel-rapl:*/*/energy_uj",
        )
    return RaplStatus(
        False,
        domains=domains,
        reason=f"{first.path} cannot be read ({first.error})",
        hint="CPU energy will be estimated from CPU time x TDP",
    )
