"""The hour's grid: a time series of carbon intensity, and what work drew from it.

A series is read from a CSV file (``audit report --intensity-series FILE``, setting
``intensity_series``). Three layouts are recognised, by their header:

- ours: ``timestamp`` (ISO 8601 with a zone or ``Z``) and ``intensity_g_per_kwh``;
- Electricity Maps' data-portal export: ``Datetime (UTC)`` and ``Carbon Intensity gCO₂eq/kWh
  (life cycle assessment)`` (older files: ``(LCA)``) or ``(direct)``; the life-cycle figure is
  taken where both are present, as the app shows it (``(direct)`` is the Scope 2 combustion-only
  figure);
- WattTime's historical data: ``point_time`` and ``value`` in lbs CO2/MWh (WattTime's unit, a
  marginal rate, MOER), converted to g/kWh (1 lb/MWh = 0.45359237 g/kWh).

**Convention: a step series.** Each value holds from its timestamp until the next one, but for
at most the series' usual spacing (its most common step: one hour for hourly data); the last
value holds one step. A longer spacing leaves the time between uncovered: a missing stretch.
Work that falls in a missing stretch is an error naming it (:class:`MissingIntensityError`),
never a silent fallback to an average.

A trial's intensity is the **time-weighted mean** of the series over its own interval (its
energy taken as drawn evenly over it), so a trial of 30 minutes at 200 g/kWh and 30 minutes
at 400 g/kWh draws at 300 g/kWh.

Example:
    >>> series = IntensitySeries.parse(
    ...     "timestamp,intensity_g_per_kwh\\n2026-01-01T00:00Z,200\\n2026-01-01T01:00Z,400\\n")
    >>> start = series.times[0] + 1800  # 00:30 UTC
    >>> series.mean(start, start + 3600)  # half an hour at 200, half an hour at 400
    300.0
    >>> series.mean(start, start + 7200)
    Traceback (most recent call last):
    ...
    auditor.model.series.MissingIntensityError: the intensity series <text> has no value for 2026-01-01 02:00 to 02:30 UTC (it covers 2026-01-01 00:00 to 02:00 UTC): add those hours to the file
"""

from __future__ import annotations

import bisect
import csv
import functools
import io
import itertools
import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from auditor.errors import InvalidInputError

LB_PER_MWH_IN_G_PER_KWH = 0.45359237  # 1 lb/MWh = 453.59237 g / 1000 kWh

OURS = ("timestamp", "intensity_g_per_kwh")
EM_TIME = "Datetime (UTC)"
EM_VALUES = (  # Electricity Maps' intensity columns, the preferred first
    "Carbon Intensity gCO₂eq/kWh (life cycle assessment)",
    "Carbon Intensity gCO₂eq/kWh (LCA)",
    "Carbon Intensity gCO₂eq/kWh (direct)",
)
WATTTIME = ("point_time", "value")


class MissingIntensityError(InvalidInputError):
    """Work fell where the intensity series has no value."""


def format_time(ts: float) -> str:
    """A moment as a short UTC text: ``'2026-01-01 03:00 UTC'`` (seconds when not zero).

    Example:
        >>> format_time(0.0)
        '1970-01-01 00:00 UTC'
    """
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if moment.second else "%Y-%m-%d %H:%M UTC")


def format_span(start: float, end: float) -> str:
    """Two moments as ``'2026-01-01 02:00 to 02:30 UTC'`` (the date once when it is the same)."""
    first, last = format_time(start), format_time(end)
    if first[:10] == last[:10]:
        last = last[11:]
    return f"{first[:-4]} to {last}"


def _parse_time(text: str, row: int, source: str, naive_is_utc: bool) -> float:
    raw = text.strip()
    try:
        moment = datetime.fromisoformat(raw.replace(" UTC", "").strip())
    except ValueError:
        raise InvalidInputError(
            f"{source}, row {row}: cannot read the time {raw!r}: write ISO 8601 with a zone, e.g. 2026-11-24T13:00:00Z"
        ) from None
    if moment.tzinfo is None:
        if not naive_is_utc:
            raise InvalidInputError(
                f"{source}, row {row}: the time {raw!r} has no zone: add one (2026-11-24T13:00:00Z or +01:00), "
                "so that the hour is not guessed"
            )
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _parse_value(text: str, row: int, source: str, column: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise InvalidInputError(f"{source}, row {row}: {column} {text.strip()!r} is not a number: give gCO2e/kWh as a plain number") from None
    if not math.isfinite(value) or value < 0:
        raise InvalidInputError(f"{source}, row {row}: {column} {text.strip()!r} is not an intensity: give a number >= 0")
    return value


def _layout(header: list[str], source: str) -> tuple[str, str, float, bool, str]:
    """The time column, the value column, the value's factor to g/kWh, whether times without a
    zone are UTC, and what the file is."""
    names = [name.strip().lstrip("\ufeff") for name in header]
    if all(name in names for name in OURS):
        return OURS[0], OURS[1], 1.0, False, "gCO2e/kWh"
    if EM_TIME in names:
        for column in EM_VALUES:
            if column in names:
                kind = "direct" if column.endswith("(direct)") else "life cycle"
                return EM_TIME, column, 1.0, True, f"Electricity Maps export, {kind}"
    if all(name in names for name in WATTTIME):
        return WATTTIME[0], WATTTIME[1], LB_PER_MWH_IN_G_PER_KWH, False, "WattTime, lbs CO2/MWh converted to g/kWh"
    raise InvalidInputError(
        f"{source}: unknown columns {', '.join(repr(n) for n in names) or '(none)'}: give 'timestamp' (ISO 8601 with a zone) "
        "and 'intensity_g_per_kwh', or an Electricity Maps export ('Datetime (UTC)', 'Carbon Intensity gCO₂eq/kWh (...)') "
        "or WattTime data ('point_time', 'value' in lbs/MWh)"
    )


@dataclass(frozen=True)
class IntensitySeries:
    """Carbon intensity over time, a step series (see the module's convention).

    Attributes:
        times: the timestamps, seconds since the epoch, ascending.
        values: gCO2e/kWh from each timestamp on.
        step_s: the usual spacing: how long a value holds at most.
        source: where the series was read from (a path).
        kind: what the file was (``gCO2e/kWh``, ``Electricity Maps export, life cycle``, ...).
    """

    times: tuple[float, ...]
    values: tuple[float, ...]
    step_s: float
    source: str = "<text>"
    kind: str = "gCO2e/kWh"

    @classmethod
    def parse(cls, text: str, source: str = "<text>") -> IntensitySeries:
        """A series from CSV text (see the module for the layouts).

        Raises:
            InvalidInputError: unknown columns, an unreadable or zone-less time, a value that is
                not an intensity, a repeated timestamp, or no rows; the message says which row.
        """
        reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
        header = next(reader, None)
        if not header:
            raise InvalidInputError(f"{source}: empty file: give a header 'timestamp,intensity_g_per_kwh' and one row per hour")
        time_col, value_col, factor, naive_utc, kind = _layout(header, source)
        names = [name.strip().lstrip("\ufeff") for name in header]
        ti, vi = names.index(time_col), names.index(value_col)
        points: dict[float, float] = {}
        for row_number, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) <= max(ti, vi):
                raise InvalidInputError(f"{source}, row {row_number}: {len(row)} cells where {len(names)} columns were named: fix the row")
            at = _parse_time(row[ti], row_number, source, naive_utc)
            if at in points:
                raise InvalidInputError(f"{source}, row {row_number}: {format_time(at)} is given twice: keep one value per time")
            points[at] = _parse_value(row[vi], row_number, source, value_col) * factor
        if not points:
            raise InvalidInputError(f"{source}: no rows: give one row per hour the work ran")
        times = tuple(sorted(points))
        steps = Counter(b - a for a, b in itertools.pairwise(times))
        step = max(steps.most_common(), key=lambda item: (item[1], -item[0]))[0] if steps else 3600.0
        return cls(times, tuple(points[t] for t in times), float(step), source, kind)

    @classmethod
    def load(cls, path: str | Path) -> IntensitySeries:
        """The series in the CSV file ``path`` (read once per process while the file is unchanged).

        Raises:
            InvalidInputError: the file cannot be read, or :meth:`parse` refuses it.
        """
        target = Path(path).expanduser()
        try:
            stat = target.stat()
        except OSError as exc:
            raise InvalidInputError(f"cannot read the intensity series {target}: {exc.strerror}: give the path of a CSV file") from None
        return _load(str(target.resolve()), stat.st_mtime_ns, stat.st_size)

    # -- coverage ---------------------------------------------------------------------------

    def _held(self, i: int) -> float:
        """How long value ``i`` holds: to the next timestamp, at most one step."""
        if i + 1 < len(self.times):
            return min(self.times[i + 1] - self.times[i], self.step_s)
        return self.step_s

    @property
    def start(self) -> float:
        """The first covered moment."""
        return self.times[0]

    @property
    def end(self) -> float:
        """The end of the last value's step."""
        return self.times[-1] + self.step_s

    def missing(self, start: float, end: float) -> list[tuple[float, float]]:
        """The stretches of ``[start, end]`` the series has no value for (empty: covered).

        Example:
            >>> s = IntensitySeries((0.0, 3600.0, 10800.0), (1.0, 2.0, 3.0), 3600.0)
            >>> s.missing(0, 14400), s.missing(-60, 60)
            ([(7200.0, 10800.0)], [(-60, 0.0)])
        """
        if end <= start:
            end = math.nextafter(start, math.inf)  # a moment: covered or not
        gaps: list[tuple[float, float]] = []
        if start < self.start:
            gaps.append((start, min(end, self.start)))
        first = max(0, bisect.bisect_right(self.times, start) - 1)
        for i in range(first, len(self.times)):
            if self.times[i] >= end:
                break
            covered_to = self.times[i] + self._held(i)
            next_start = self.times[i + 1] if i + 1 < len(self.times) else math.inf
            lo, hi = max(start, covered_to), min(end, next_start)
            if hi > lo:
                gaps.append((lo, hi))
        return gaps

    def _whole_gap(self, gap: tuple[float, float]) -> tuple[float, float]:
        """A missing stretch inside the series widened to the whole gap between two values (the
        hours to add); before the first or after the last value, as it is."""
        lo, _hi = gap
        i = bisect.bisect_right(self.times, lo) - 1
        if 0 <= i < len(self.times) - 1 and lo >= self.times[i] + self._held(i):
            return (self.times[i] + self._held(i), self.times[i + 1])
        return gap

    def check_covers(self, spans: list[tuple[float, float]], what: str = "the work") -> None:
        """Raise :class:`MissingIntensityError` naming every stretch of ``spans`` the series
        does not cover (merged, the first five named)."""
        gaps = sorted(self._whole_gap(gap) for start, end in spans for gap in self.missing(start, end))
        merged: list[list[float]] = []
        for lo, hi in gaps:
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        if not merged:
            return
        named = ", ".join(format_span(lo, hi) if hi - lo >= 1 else format_time(lo) for lo, hi in merged[:5])
        more = f" and {len(merged) - 5} more stretches" if len(merged) > 5 else ""
        ran = "" if what == "the work" else f" ({what} ran then)"
        raise MissingIntensityError(
            f"the intensity series {self.source} has no value for {named}{more}{ran} "
            f"(it covers {format_span(self.start, self.end)}): add those hours to the file"
        )

    # -- intensity --------------------------------------------------------------------------

    def at(self, moment: float) -> float:
        """The intensity in force at ``moment``, g/kWh.

        Raises:
            MissingIntensityError: the series has no value then.
        """
        return self.mean(moment, moment)

    def mean(self, start: float, end: float, what: str = "the work") -> float:
        """The time-weighted mean intensity over ``[start, end]``, g/kWh (the value in force at
        ``start`` when the interval is empty).

        Raises:
            MissingIntensityError: part of the interval is not covered; the message names it.
        """
        if end < start:
            start, end = end, start
        if end == start:
            i = bisect.bisect_right(self.times, start) - 1
            if i < 0 or start >= self.times[i] + self._held(i):
                self.check_covers([(start, math.nextafter(start, math.inf))], what)
            return self.values[i]
        self.check_covers([(start, end)], what)
        total = 0.0
        i = max(0, bisect.bisect_right(self.times, start) - 1)
        while i < len(self.times) and self.times[i] < end:
            lo, hi = max(start, self.times[i]), min(end, self.times[i] + self._held(i))
            if hi > lo:
                total += self.values[i] * (hi - lo)
            i += 1
        return total / (end - start)

    def describe(self) -> str:
        """The series in a few words, for reports: source, kind, span and step."""
        step = f"{self.step_s / 60:g}-minute" if self.step_s < 3600 else f"{self.step_s / 3600:g}-hour"
        return f"{self.source} ({self.kind}, {step} steps, {format_span(self.start, self.end)})"

    def to_dict(self) -> dict[str, object]:
        """What a report's JSON says of the series."""
        return {"path": self.source, "kind": self.kind, "step_s": self.step_s, "first": self.start,
                "end": self.end, "points": len(self.times),
                "convention": "step: each value holds until the next timestamp, at most one step; "
                              "a trial's intensity is the time-weighted mean over its interval"}


@functools.lru_cache(maxsize=16)
def _load(path: str, _mtime_ns: int, _size: int) -> IntensitySeries:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"cannot read the intensity series {path}: not UTF-8 text; save it as UTF-8 CSV") from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read the intensity series {path}: {exc.strerror}") from None
    return IntensitySeries.parse(text, source=path)


@dataclass(frozen=True)
class Shift:
    """What the same work would have emitted had it started later, at the best time.

    Attributes:
        window_s: how far the start could move (later only).
        offset_s: how much later the best start is (0: it already ran at the best time).
        start: the best start, seconds since the epoch.
        actual_kg: the CO2e as it ran (location-based).
        best_kg: the CO2e started at ``start``.
        candidates: how many starts were tried; ``skipped``: how many of them the series did
            not cover (not counted as possible).
    """

    window_s: float
    offset_s: float
    start: float
    actual_kg: float
    best_kg: float
    candidates: int
    skipped: int

    @property
    def saved_kg(self) -> float:
        """CO2e the shift would have saved."""
        return self.actual_kg - self.best_kg

    @property
    def saved_fraction(self) -> float | None:
        """The saving as a share of the actual CO2e (None when nothing was emitted)."""
        return self.saved_kg / self.actual_kg if self.actual_kg > 0 else None


SHIFT_METHOD = ("the sweep's trials moved as one block (same durations, same energy, same gaps), its start tried at "
                "each series timestamp within the window after the actual start; each trial's CO2e is its facility "
                "energy x the time-weighted mean intensity over its shifted interval; the lowest is reported")


def co2e_kg(series: IntensitySeries, spans: list[tuple[float, float, float]], offset: float = 0.0) -> float:
    """The CO2e, kg, of work given as ``(start, end, facility_kWh)`` spans, each at the series'
    time-weighted mean over its interval moved by ``offset`` seconds.

    Example:
        >>> s = IntensitySeries((0.0, 3600.0), (200.0, 400.0), 3600.0)
        >>> co2e_kg(s, [(1800.0, 5400.0, 2.0)])  # 2 kWh at 300 g/kWh
        0.6
    """
    return sum(kwh * series.mean(start + offset, end + offset) for start, end, kwh in spans) / 1000.0


def best_shift(series: IntensitySeries, spans: list[tuple[float, float, float]], window_s: float) -> Shift | None:
    """The lowest CO2e of the work in ``spans`` (``(start, end, facility_kWh)``) moved later as
    a block to start at a series timestamp within ``window_s`` of its actual start (see
    :data:`SHIFT_METHOD`); None without work.

    Raises:
        MissingIntensityError: the series does not cover the work as it ran.

    Example:
        >>> s = IntensitySeries((0.0, 3600.0, 7200.0), (400.0, 100.0, 300.0), 3600.0)
        >>> shift = best_shift(s, [(0.0, 3600.0, 1.0)], window_s=7200)
        >>> shift.offset_s, shift.actual_kg, shift.best_kg, round(shift.saved_fraction, 2)
        (3600.0, 0.4, 0.1, 0.75)
    """
    if not spans or window_s < 0:
        return None
    first = min(start for start, _, _ in spans)
    series.check_covers([(start, end) for start, end, _ in spans])
    actual = co2e_kg(series, spans)
    best, best_offset, tried, skipped = actual, 0.0, 1, 0
    lo = bisect.bisect_right(series.times, first)
    for moment in series.times[lo:]:
        offset = moment - first
        if offset > window_s:
            break
        tried += 1
        if any(series.missing(start + offset, end + offset) for start, end, _ in spans):
            skipped += 1
            continue
        value = co2e_kg(series, spans, offset)
        if value < best:
            best, best_offset = value, offset
    return Shift(window_s, best_offset, first + best_offset, actual, best, tried, skipped)


_DURATION_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0, "hour": 3600.0,
                   "hours": 3600.0, "d": 86400.0, "day": 86400.0, "days": 86400.0}


def parse_duration(text: str) -> float:
    """A duration such as ``"24h"``, ``"90 min"``, ``"1.5 h"`` or ``"2d"``, in seconds.

    Raises:
        InvalidInputError: not a positive number with one of s, min, h, d.

    Example:
        >>> parse_duration("24h"), parse_duration("90 min")
        (86400.0, 5400.0)
    """
    raw = str(text).strip().lower()
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyz").strip()
    unit = raw[len(raw.rstrip("abcdefghijklmnopqrstuvwxyz")):].strip()
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    if unit not in _DURATION_UNITS or not math.isfinite(value) or value <= 0:
        raise InvalidInputError(f"cannot read the duration {text!r}: write a positive number with s, min, h or d, e.g. '24h' or '90 min'")
    return value * _DURATION_UNITS[unit]


def cleanest_start(series: IntensitySeries, now: float, deadline_s: float) -> tuple[float, float]:
    """When to start work to draw on the cleanest grid within ``deadline_s`` from ``now``: the
    moment (``now``, or a later series timestamp within the deadline) with the lowest intensity
    in force, the earliest of equals; returns it and its intensity, g/kWh. The intensity at the
    start stands for the work's (a command's length is not known ahead).

    Raises:
        MissingIntensityError: the series has no value at any moment of the window.

    Example:
        >>> s = IntensitySeries((0.0, 3600.0, 7200.0), (400.0, 100.0, 100.0), 3600.0)
        >>> cleanest_start(s, now=600.0, deadline_s=12 * 3600)
        (3600.0, 100.0)
    """
    moments = [now] + [t for t in series.times if now < t <= now + deadline_s]
    covered = [(series.at(t), t) for t in moments if not series.missing(t, t)]
    if not covered:
        series.check_covers([(now, now + deadline_s)], "the window to start in")
    value, moment = min(covered)
    return moment, value
