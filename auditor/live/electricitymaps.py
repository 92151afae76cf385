"""Electricity Maps' carbon-intensity history for a zone, as an :class:`IntensitySeries`.

Off by default (setting ``live_intensity = "electricitymaps"`` turns it on); nothing connects
until :meth:`ElectricityMaps.series` is called. Two endpoints of API v3 are used, both with the
user's token in the header ``auth-token``:

- ``GET {base}/carbon-intensity/history?zone=DE``: the last 24 hours, hourly, for every token
  (the free personal tier too). It answers ``{"zone": "DE", "history": [entry, ...]}``.
- ``GET {base}/carbon-intensity/past-range?zone=DE&start=...&end=...``: any past hours, at most
  10 days of hourly data per request (tokens with historical access). It answers
  ``{"zone": "DE", "data": [entry, ...]}``.

Each entry is ``{"zone", "carbonIntensity" (gCO2eq/kWh, life cycle unless the token asks for
direct), "datetime" (the hour's start, UTC), "updatedAt", "createdAt", "emissionFactorType",
"isEstimated", "estimationMethod"}``; an entry whose ``carbonIntensity`` is null is an hour
without data (a gap, named if work ran then). Hours inside the last 24 ask ``history``, older
ones ``past-range`` in 10-day pieces. The entries are turned into our CSV layout and read by
:meth:`IntensitySeries.parse`, so a live series is parsed and checked exactly as a file is.

**Cache.** Every answer that covers the hours it was asked for is kept as it came, one file per
zone and hour range (``$XDG_STATE_HOME/auditor/electricitymaps/DE/20260101T0000Z_20260101T0400Z.json``,
beside the spool of held-back trials), and read before asking: hours the cached answers cover
are never fetched again, so a report made twice, or offline, asks nothing. Delete the folder to
fetch again (Electricity Maps revises estimated hours for a while).

**Errors.** A refused token, an unknown zone, an unreachable server or an answer that is not
the history is one :class:`~auditor.errors.AuditorError` line saying what to fix (the token,
the zone, the network, or ``--intensity-series FILE``), never a fall back to the yearly figure;
the token is never in a message.

Example (no network: the answer is given):
    >>> answer = b'{"zone": "DE", "history": [{"datetime": "2026-01-01T00:00:00.000Z", "carbonIntensity": 302},'
    >>> answer += b' {"datetime": "2026-01-01T01:00:00.000Z", "carbonIntensity": 288}]}'
    >>> points, kinds = read_answer(answer, "an answer")
    >>> series = series_from(points, kinds, "DE")
    >>> series.values, series.step_s, series.source
    ((302.0, 288.0), 3600.0, 'Electricity Maps zone DE')
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from auditor.data import read_table
from auditor.errors import AuditorError, InvalidInputError
from auditor.model.regions import resolve_region
from auditor.model.series import IntensitySeries, format_span
from auditor.model.text import printable

DEFAULT_BASE_URL = "https://api.electricitymaps.com/v3"
TOKEN_ENV = "ELECTRICITYMAPS_TOKEN"
HOUR_S = 3600.0
HISTORY_S = 24 * HOUR_S  # what /carbon-intensity/history covers, back from now
RANGE_MAX_S = 10 * 24 * HOUR_S  # the most hourly data /carbon-intensity/past-range gives per request
TIMEOUT_S = 20.0
MAX_ANSWER_BYTES = 16 * 1024 * 1024
_ZONE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
_FIX = "give --intensity-series FILE (an export from the Electricity Maps portal), or set live_intensity off for the yearly figure"


class LiveSourceError(AuditorError):
    """Electricity Maps could not be reached, or answered with an error or not with the history."""


def check_zone(text: str) -> str:
    """An Electricity Maps zone key as the API spells it (``DE``, ``US-CAL-CISO``, ``DK-DK1``).

    Raises:
        InvalidInputError: not a zone key.

    Example:
        >>> check_zone(" de "), check_zone("US-CAL-CISO")
        ('DE', 'US-CAL-CISO')
    """
    zone = str(text).strip().upper()
    if not _ZONE.match(zone):
        raise InvalidInputError(f"electricitymaps_zone {str(text).strip()!r} is not a zone key: give one such as DE, FR or US-CAL-CISO "
                                "(https://app.electricitymaps.com lists them)")
    return zone


def check_url(text: str) -> str:
    """The API's base URL, without a trailing slash (http or https, with a host).

    Raises:
        InvalidInputError: not such a URL.

    Example:
        >>> check_url("http://127.0.0.1:8080/v3/")
        'http://127.0.0.1:8080/v3'
    """
    url = str(text).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise InvalidInputError(f"electricitymaps_url {url!r} is not a base URL: give one such as {DEFAULT_BASE_URL}")
    return url


def zone_for_region(region: str | None) -> str | None:
    """The zone of a region setting: a country's ISO code, or a cloud region's country; None
    for an intensity or no region.

    Example:
        >>> zone_for_region("Germany"), zone_for_region("aws:eu-central-1"), zone_for_region("545 g/kWh")
        ('DE', 'DE', None)
    """
    if not region or not region.strip():
        return None
    text = region.strip()
    if ":" in text:
        provider, _, name = text.lower().partition(":")
        for row in read_table("cloud_regions.csv"):
            if row["provider"].lower() == provider and row["region"].lower() == name:
                return row["iso2"].upper()
        return None
    found = resolve_region(text)
    return found.code.upper() if found.code.isalpha() and len(found.code) == 2 else None


def default_cache_dir() -> Path:
    """``$XDG_STATE_HOME/auditor/electricitymaps`` (``~/.local/state/auditor/electricitymaps``),
    beside the spool of held-back trials."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "auditor" / "electricitymaps"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H%MZ")


def read_answer(body: bytes, what: str) -> tuple[dict[float, float], set[str]]:
    """The hours of one answer of ``history`` or ``past-range`` (``{"history": [...]}`` or
    ``{"data": [...]}``): ``{timestamp: gCO2e/kWh}`` and the emission factor types named,
    read through :meth:`IntensitySeries.parse`. Entries with a null intensity are left out.

    Raises:
        LiveSourceError: not JSON, or not such an answer.
        InvalidInputError: an entry's time or value that the series refuses (named by row).
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise LiveSourceError(f"{what} is not JSON: is electricitymaps_url the API (ending in /v3)? Or {_FIX}") from None
    entries = data.get("history", data.get("data")) if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise LiveSourceError(f"{what} holds no 'history' or 'data' list: is electricitymaps_url the API (ending in /v3)? Or {_FIX}")
    rows, kinds = ["timestamp,intensity_g_per_kwh"], set()
    for number, entry in enumerate(entries, start=1):
        moment = entry.get("datetime") if isinstance(entry, dict) else None
        if not isinstance(moment, str) or any(ch in moment for ch in ',\n\r"'):
            raise LiveSourceError(f"{what}: entry {number} has no readable 'datetime': {_FIX}")
        value = entry.get("carbonIntensity")
        if value is None:
            continue  # an hour without data: a gap
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise LiveSourceError(f"{what}: entry {number} ({moment}) has a carbonIntensity that is not a number: {_FIX}")
        if isinstance(entry.get("emissionFactorType"), str):
            kinds.add(entry["emissionFactorType"])
        rows.append(f"{moment},{float(value)!r}")
    if len(rows) == 1:
        return {}, kinds
    series = IntensitySeries.parse("\n".join(rows) + "\n", source=what)
    return dict(zip(series.times, series.values, strict=True)), kinds


def series_from(points: dict[float, float], kinds: set[str], zone: str) -> IntensitySeries:
    """The series of ``points`` (``{timestamp: g/kWh}``, at least one), read by
    :meth:`IntensitySeries.parse` as a file would be; its source names the zone."""
    text = "timestamp,intensity_g_per_kwh\n" + "".join(f"{_iso(t)},{v!r}\n" for t, v in sorted(points.items()))
    series = IntensitySeries.parse(text, source=f"Electricity Maps zone {zone}")
    kind = "Electricity Maps API" + (f", {', '.join(sorted(kinds))}" if kinds else "")
    return replace(series, kind=kind)


def _missing(points: dict[float, float], start: float, end: float) -> list[tuple[float, float]]:
    if not points:
        return [(start, end)]
    return series_from(points, set(), "-").missing(start, end)


@dataclass(frozen=True)
class Request:
    """One request: the endpoint, the hours it is for and its URL (the token goes in a header)."""

    endpoint: str
    start: float
    end: float
    url: str


@dataclass(frozen=True)
class ElectricityMaps:
    """The carbon-intensity history of one zone from Electricity Maps, cached on disk.

    Attributes:
        token: the user's API token (sent as ``auth-token``; never printed, not in ``repr``).
        zone: the zone key (``DE``).
        base_url: the API, ``https://api.electricitymaps.com/v3`` unless a proxy or a test
            server stands in.
        cache: the cache folder (default :func:`default_cache_dir`); the zone's answers go in
            a sub-folder named after it.
        timeout_s: how long one request may take.
    """

    token: str = field(repr=False)
    zone: str
    base_url: str = DEFAULT_BASE_URL
    cache: Path | None = None
    timeout_s: float = TIMEOUT_S

    @property
    def folder(self) -> Path:
        """Where this zone's answers are kept."""
        return (self.cache or default_cache_dir()) / self.zone

    def requests_for(self, start: float, end: float, now: float) -> list[Request]:
        """The requests for the hours ``[start, end]`` as of ``now``: one ``history`` when they
        are all within the last 24 hours, else ``past-range`` in pieces of 10 days.

        Example:
            >>> source = ElectricityMaps("t", "DE", "http://x/v3")
            >>> [r.url for r in source.requests_for(7200.0, 9000.0, now=20000.0)]
            ['http://x/v3/carbon-intensity/history?zone=DE']
            >>> [r.url for r in source.requests_for(0.0, 1.0, now=10 * 86400.0)]
            ['http://x/v3/carbon-intensity/past-range?zone=DE&start=1970-01-01T00%3A00%3A00Z&end=1970-01-01T01%3A00%3A00Z']
        """
        lo = math.floor(start / HOUR_S) * HOUR_S
        hi = max(math.ceil(end / HOUR_S) * HOUR_S, lo + HOUR_S)
        if lo >= now - HISTORY_S:
            return [Request("history", lo, hi, f"{self.base_url}/carbon-intensity/history?{urlencode({'zone': self.zone})}")]
        pieces = []
        while lo < hi:
            upto = min(lo + RANGE_MAX_S, hi)
            query = urlencode({"zone": self.zone, "start": _iso(lo), "end": _iso(upto)})
            pieces.append(Request("past-range", lo, upto, f"{self.base_url}/carbon-intensity/past-range?{query}"))
            lo = upto
        return pieces

    def series(self, start: float, end: float, now: float | None = None) -> IntensitySeries:
        """The zone's intensity over ``[start, end]`` (seconds since the epoch): from the cache
        where it covers them, else fetched (and the answers cached).

        Raises:
            InvalidInputError: the token is refused, the zone unknown, or hours the work ran in
                have no value in Electricity Maps' answers (named).
            LiveSourceError: the server cannot be reached or answers with another error.
        """
        now = time.time() if now is None else now
        points, kinds = self.cached()
        if _missing(points, start, end):
            for request in self.requests_for(start, end, now):
                wanted = (max(start, request.start), min(end, request.end))
                if not _missing(points, *wanted):
                    continue
                body = self.fetch(request)
                got, got_kinds = read_answer(body, f"Electricity Maps' answer for zone {self.zone}")
                if not _missing(got, *wanted):  # a whole answer: kept; a partial one is asked again next time
                    self._keep(body, request)
                points.update(got)
                kinds |= got_kinds
        gaps = _missing(points, start, end)
        if gaps:
            named = ", ".join(format_span(lo, hi) for lo, hi in gaps[:5])
            raise InvalidInputError(
                f"Electricity Maps has no carbon intensity for zone {self.zone} at {named} (the work ran then): hours of the last "
                f"hour may not be published yet (run again later); for older ones {_FIX}")
        return series_from(points, kinds, self.zone)

    def cached(self) -> tuple[dict[float, float], set[str]]:
        """Every hour the cached answers of this zone hold (a damaged file is skipped)."""
        points: dict[float, float] = {}
        kinds: set[str] = set()
        try:
            files = sorted(self.folder.glob("*.json"))
        except OSError:
            return points, kinds
        for path in files:
            try:
                got, got_kinds = read_answer(path.read_bytes(), f"the cached answer {path}")
            except (OSError, AuditorError):
                continue
            points.update(got)
            kinds |= got_kinds
        return points, kinds

    def _keep(self, body: bytes, request: Request) -> None:
        """Write an answer into the cache, whole or not at all (a cache that cannot be written
        only means asking again next time)."""
        target = self.folder / f"{_stamp(request.start)}_{_stamp(request.end)}.json"
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            with tempfile.NamedTemporaryFile("wb", dir=self.folder, suffix=".part", delete=False) as handle:
                handle.write(body)
            os.replace(handle.name, target)
        except OSError:
            pass

    def fetch(self, request: Request) -> bytes:
        """The body of the answer to ``request``.

        Raises:
            InvalidInputError: HTTP 401 or 403 (the token), 400 or 404 (the zone).
            LiveSourceError: the server cannot be reached, times out, or answers another error.
        """
        import urllib.error
        import urllib.request

        call = urllib.request.Request(request.url, headers={"auth-token": self.token, "Accept": "application/json",
                                                            "User-Agent": "hpo-auditor"})
        where = f"{self.base_url}/carbon-intensity/{request.endpoint}"
        try:
            with urllib.request.urlopen(call, timeout=self.timeout_s) as answer:  # noqa: S310 - http(s) only, checked
                body = answer.read(MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise self._refused(exc.code, _message(exc), where) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            text = getattr(reason, "strerror", None) or str(reason)
            raise LiveSourceError(f"cannot reach Electricity Maps at {self.base_url} ({printable(str(text)).lower()}): check the "
                                  f"network and electricitymaps_url, or {_FIX}") from None
        except (TimeoutError, OSError) as exc:
            text = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
            raise LiveSourceError(f"cannot reach Electricity Maps at {self.base_url} ({printable(str(text))}): check the network "
                                  f"and electricitymaps_url, or {_FIX}") from None
        if len(body) > MAX_ANSWER_BYTES:
            raise LiveSourceError(f"{where} answered more than {MAX_ANSWER_BYTES // 2**20} MiB: is electricitymaps_url the API? Or {_FIX}")
        return body

    def _refused(self, code: int, message: str, where: str) -> AuditorError:
        if self.token:
            message = message.replace(self.token, "***")  # a server that echoes the token it refused
        said = f"HTTP {code}{': ' + message if message else ''}"
        if code == 401:
            return InvalidInputError(f"Electricity Maps refused the token ({said}): set a valid one in {TOKEN_ENV} or the setting "
                                     f"electricitymaps_token (https://portal.electricitymaps.com), or {_FIX}")
        if code == 403:
            return InvalidInputError(f"Electricity Maps refused this token access to {where} for zone {self.zone} ({said}): a free token reads "
                                     f"the last 24 hours only (history) and some zones; for other hours or zones {_FIX}")
        if code in (400, 404):
            return InvalidInputError(f"Electricity Maps does not know zone {self.zone!r} or this request ({said}): set "
                                     "electricitymaps_zone to a zone key such as DE or US-CAL-CISO (https://app.electricitymaps.com)")
        if code == 429:
            return LiveSourceError(f"Electricity Maps asks to slow down ({said}): run again in a while (what was fetched is cached), "
                                   f"or {_FIX}")
        return LiveSourceError(f"{where} answered {said}: try again later, or {_FIX}")


def _message(exc: object) -> str:
    """The short reason an error answer gives (its JSON ``message`` or ``error``), printable."""
    try:
        body = exc.read(4096)  # type: ignore[attr-defined]
        data = json.loads(body)
    except Exception:  # noqa: BLE001 - an error answer without a readable reason
        return ""
    text = data.get("message") or data.get("error") if isinstance(data, dict) else None
    return printable(str(text))[:200] if text else ""
