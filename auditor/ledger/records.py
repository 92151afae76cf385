"""What the ledger holds, as plain dataclasses."""

from __future__ import annotations

import functools
import hashlib
import socket
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from auditor.ledger.schema import ENERGY_DOMAINS
from auditor.meters.base import EnergyReading  # what meters measure is what the ledger stores


@functools.cache
def this_host() -> str:
    """This machine's name, asked once: ``socket.gethostname`` gives up the GIL, and a record
    built for every trial must not wait behind a busy search loop to get it back."""
    return socket.gethostname()


NAME_LIMIT = 255  # the ledger's sweep names and trial keys


def fit_name(name: str, limit: int = NAME_LIMIT) -> str:
    """``name`` as every ledger backend can hold it: unchanged up to ``limit`` characters, else
    cut and ended with a hash of the whole, so that two long names stay two sweeps; a NUL
    (which PostgreSQL's text cannot hold) is kept as the four characters ``\\x00``. The ledger
    maps every name it is given through this, so a name is found again as its search gave it.

    Example:
        >>> fit_name("lr-search"), fit_name("a\\x00b")
        ('lr-search', 'a\\\\x00b')
        >>> long = fit_name("x" * 300)
        >>> len(long), long[:3], long == fit_name("x" * 300) != fit_name("x" * 301)
        (255, 'xxx', True)
    """
    if "\x00" in name:
        name = name.replace("\x00", "\\x00")
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{name[:limit - 13]}~{digest}"


class TrialState(str, Enum):
    """How a trial ended (or that it still runs)."""

    RUNNING = "running"
    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"
    STOPPED = "stopped"  # stopped from outside: a scheduler, a budget, a signal
    INTERRUPTED = "interrupted"  # its process died; energy up to the last heartbeat
    IDLE = "idle"  # not a trial: a worker's energy between trials, the search's idle overhead


@dataclass
class TrialRecord:
    """One trial of a sweep, as stored in the ledger.

    Example:
        >>> record = TrialRecord(sweep="lr-search", trial_key="3", state=TrialState.COMPLETE,
        ...                      start_time=0.0, end_time=3600.0, gpu_seconds=3600.0,
        ...                      energy={"gpu": EnergyReading(1.08e6, "counter")})
        >>> record.energy_kwh
        0.3
    """

    sweep: str
    trial_key: str
    state: TrialState | str
    start_time: float
    end_time: float | None = None
    number: int | None = None
    name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    objective: list[float] | None = None
    host: str = field(default_factory=this_host)
    devices: list[dict[str, Any]] = field(default_factory=list)
    gpu_seconds: float = 0.0
    energy: dict[str, EnergyReading] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    is_final: bool = False
    stopped_by_budget: bool = False
    recorded_at: float = field(default_factory=time.time)
    run: str | None = None  # which run of the sweep (a study created anew): None for its first

    def __post_init__(self) -> None:
        self.state = TrialState(self.state)
        unknown = set(self.energy) - set(ENERGY_DOMAINS)
        if unknown:
            raise ValueError(f"unknown energy domains {sorted(unknown)}: use {', '.join(ENERGY_DOMAINS)}")

    @property
    def energy_joules(self) -> float:
        """Total IT energy over all domains, in joules."""
        return sum(reading.joules for reading in self.energy.values())

    @property
    def energy_kwh(self) -> float:
        """Total IT energy over all domains, in kWh."""
        return self.energy_joules / 3.6e6

    @property
    def gpu_hours(self) -> float:
        """Devices held x wall hours."""
        return self.gpu_seconds / 3600.0


@dataclass(frozen=True)
class SweepRecord:
    """A sweep: an Optuna study, a Ray Tune experiment or a group of ``audit run`` commands."""

    id: int
    name: str
    framework: str
    created_at: float
    host: str
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BudgetEvent:
    """A budget decision worth keeping: a warning level reached, or a search stopped."""

    budget: str
    metric: str
    limit_value: float
    scope: str
    mode: str
    action: str
    spent: float
    reason: str
    sweep: str | None = None
    forecast: float | None = None
    overshoot: float = 0.0
    intensity_g_per_kwh: float | None = None
    pue: float | None = None
    at: float = field(default_factory=time.time)
    host: str = field(default_factory=this_host)


@dataclass(frozen=True)
class Usage:
    """Summed IT energy and GPU time of a set of trials, what budgets are checked against.

    ``keys``: for trials not in the ledger yet (a process's pending ones), their trial keys, so
    that a tally adding them to the ledger's sum leaves out the ledger's rows of the same trials
    (their ``running`` heartbeats): each trial is counted once.
    """

    energy_kwh: float = 0.0
    gpu_hours: float = 0.0
    trials: int = 0
    keys: frozenset[str] = field(default=frozenset(), repr=False)


@dataclass(frozen=True)
class StateAggregate:
    """Sums over the trials of one sweep in one state (what reports are built from)."""

    sweep: str
    framework: str
    state: str
    trials: int
    gpu_seconds: float
    joules: float
    measured_joules: float
    stopped_by_budget: int
    first_start: float | None = None
    last_end: float | None = None
    without_energy: int = 0  # trials flagged energy-missing: neither measured nor estimated
    refused: int = 0  # trials flagged refused-by-budget: ended by a spent budget before they ran
