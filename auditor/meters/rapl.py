"""Intel/AMD RAPL energy counters under Linux powercap (``/sys/class/powercap``).

Example:
    >>> status = probe_rapl(Path("/nonexistent"))
    >>> status.available, status.reason.startswith("no RAPL")
    (False, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from auditor.meters.base import Device, EnergySource

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


class RaplSource(EnergySource):
    """CPU package and DRAM energy from RAPL counters, with wrap-around handled.

    ``energy_uj`` counts microjoules and wraps at ``max_energy_range_uj``; a reading lower than
    the previous one means it wrapped once (the sampler reads far more often than the ~minutes a
    wrap takes even at full load).
    """

    poll_interval_s = 0.1
    read_at_end = True

    def __init__(self, root: Path = POWERCAP_ROOT) -> None:
        self._zones: dict[str, tuple[Path, float]] = {}
        self._devices: list[Device] = []
        for domain in probe_rapl(root).domains:
            if not domain.readable or not (domain.name.startswith("package") or domain.name == "dram"):
                continue
            zone = domain.path.parent
            try:
                max_range = float((zone / "max_energy_range_uj").read_text().strip())
            except (OSError, ValueError):
                max_range = 2.0**32
            socket_id = zone.name.split(":")[1]
            if domain.name == "dram":
                key, kind = f"memory:dram-{socket_id}", "memory"
            else:
                key, kind = f"cpu:package-{socket_id}", "cpu"
            self._zones[key] = (domain.path, max_range)
            self._devices.append(Device(key=key, domain=kind, name=domain.name, method="rapl"))
        self._last_raw: dict[str, float] = {}
        self._total: dict[str, float] = {}
        self._lost: dict[str, str] = {}

    def devices(self) -> list[Device]:
        return list(self._devices)

    def lost(self) -> dict[str, str]:
        return dict(self._lost)

    def read(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for key, (path, max_range) in self._zones.items():
            if key in self._lost:
                continue
            try:
                raw = float(path.read_text().strip())
            except (OSError, ValueError) as exc:
                self._lost[key] = f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}"
                continue
            previous = self._last_raw.get(key)
            if previous is None:
                delta = 0.0
            elif raw >= previous:
                delta = raw - previous
            else:
                delta = raw + max_range - previous  # wrapped
            self._last_raw[key] = raw
            self._total[key] = self._total.get(key, 0.0) + delta / 1e6
            values[key] = self._total[key]
        return values
