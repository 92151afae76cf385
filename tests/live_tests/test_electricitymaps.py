"""The Electricity Maps client against recorded answers played by a local server: what it asks
(path, zone, range, token header), the series it builds, the cache, and each error as one line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from auditor.errors import InvalidInputError
from auditor.live.electricitymaps import ElectricityMaps, LiveSourceError
from tests.live_tests.conftest import FIXTURES, TOKEN, FakeApi

T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
H = 3600.0


def _source(api_url: str, cache: Path, token: str = TOKEN) -> ElectricityMaps:
    return ElectricityMaps(token=token, zone="DE", base_url=api_url, cache=cache)


def _fixture_points(name: str, key: str) -> dict[float, float]:
    entries = json.loads((FIXTURES / name).read_text())[key]
    return {datetime.fromisoformat(e["datetime"]).timestamp(): float(e["carbonIntensity"])
            for e in entries if e["carbonIntensity"] is not None}


def test_history_asks_for_the_zone_with_the_token_and_gives_the_fixtures_hours(api: FakeApi, tmp_path: Path) -> None:
    api.answers["/v3/carbon-intensity/history"] = (200, "history_DE.json")
    series = _source(api.url, tmp_path / "cache").series(T0 + 0.5 * H, T0 + 2.5 * H, now=T0 + 23.5 * H)
    assert len(api.seen) == 1
    request = api.seen[0]
    assert request.path == "/v3/carbon-intensity/history" and request.query == {"zone": "DE"}
    assert request.headers["auth-token"] == TOKEN
    expected = _fixture_points("history_DE.json", "history")
    assert dict(zip(series.times, series.values, strict=True)) == expected  # every hour but 11:00 (null)
    assert series.times[0] == T0 and series.values[:3] == (331.0, 322.0, 309.0) and series.step_s == H
    assert series.source == "Electricity Maps zone DE" and series.kind == "Electricity Maps API, lifecycle"
    assert series.mean(T0 + 0.5 * H, T0 + 1.5 * H) == pytest.approx((331 + 322) / 2)


def test_older_hours_ask_past_range_for_their_range(api: FakeApi, tmp_path: Path) -> None:
    api.answers["/v3/carbon-intensity/past-range"] = (200, "past_range_DE.json")
    series = _source(api.url, tmp_path / "cache").series(T0 + 0.5 * H, T0 + 4.25 * H, now=T0 + 30 * 24 * H)
    [request] = api.seen
    assert request.path == "/v3/carbon-intensity/past-range"
    assert request.query == {"zone": "DE", "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T05:00:00Z"}
    assert request.headers["auth-token"] == TOKEN
    assert series.values == (331.0, 322.0, 309.0, 301.0, 296.0, 298.0)


def test_a_long_span_is_asked_in_pieces_of_ten_days() -> None:
    source = ElectricityMaps("t", "DE", "http://x/v3")
    pieces = source.requests_for(T0, T0 + 12 * 24 * H, now=T0 + 40 * 24 * H)
    assert [(p.start, p.end) for p in pieces] == [(T0, T0 + 10 * 24 * H), (T0 + 10 * 24 * H, T0 + 12 * 24 * H)]
    assert all(p.endpoint == "past-range" for p in pieces)


def test_the_cache_answers_the_second_time_and_offline(api: FakeApi, tmp_path: Path, closed_port: int) -> None:
    api.answers["/v3/carbon-intensity/past-range"] = (200, "past_range_DE.json")
    first = _source(api.url, tmp_path / "cache").series(T0 + 0.5 * H, T0 + 3 * H, now=T0 + 30 * 24 * H)
    again = _source(api.url, tmp_path / "cache").series(T0 + H, T0 + 2 * H, now=T0 + 30 * 24 * H)
    assert len(api.seen) == 1 and again == first
    [kept] = (tmp_path / "cache" / "DE").glob("*.json")
    assert kept.name == "20260101T0000Z_20260101T0300Z.json"  # keyed by zone and hour range
    assert kept.read_bytes() == (FIXTURES / "past_range_DE.json").read_bytes()  # the answer as it came
    offline = _source(f"http://127.0.0.1:{closed_port}/v3", tmp_path / "cache")  # nothing listens there
    assert offline.series(T0 + 0.5 * H, T0 + 3 * H, now=T0 + 30 * 24 * H) == first
    with pytest.raises(LiveSourceError, match="cannot reach"):  # hours the cache lacks are asked for
        offline.series(T0 + 0.5 * H, T0 + 7 * H, now=T0 + 30 * 24 * H)  # the answer held 00:00 to 06:00


def test_an_hour_without_data_is_named_and_the_partial_answer_not_kept(api: FakeApi, tmp_path: Path) -> None:
    api.answers["/v3/carbon-intensity/history"] = (200, "history_DE.json")
    with pytest.raises(InvalidInputError, match=r"no carbon intensity for zone DE at 2026-01-01 11:00 to 12:00 UTC"):
        _source(api.url, tmp_path / "cache").series(T0 + 10.5 * H, T0 + 12.5 * H, now=T0 + 23.5 * H)
    assert not list((tmp_path / "cache" / "DE").glob("*.json"))


def test_a_refused_token_is_one_line_without_the_token(api: FakeApi, tmp_path: Path) -> None:
    api.answers["/v3/carbon-intensity/history"] = (401, "unauthorized.json")
    with pytest.raises(InvalidInputError) as caught:
        _source(api.url, tmp_path / "cache").series(T0, T0 + H, now=T0 + 2 * H)
    message = str(caught.value)
    assert "refused the token (HTTP 401: Invalid authentication token)" in message and "ELECTRICITYMAPS_TOKEN" in message
    assert "--intensity-series" in message and TOKEN not in message and "\n" not in message


def test_a_server_that_echoes_the_refused_token_never_gets_it_printed(api: FakeApi, tmp_path: Path) -> None:
    """Before: the answer's message, holding the token, went into the error line."""
    api.answers["/v3/carbon-intensity/history"] = (401, "echoes_token.json")
    with pytest.raises(InvalidInputError) as caught:
        _source(api.url, tmp_path / "cache").series(T0, T0 + H, now=T0 + 2 * H)
    assert TOKEN not in str(caught.value) and "Invalid authentication token ***" in str(caught.value)


def test_an_unknown_zone_and_a_forbidden_range_say_what_to_set(api: FakeApi, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not know zone 'DE'.*electricitymaps_zone"):
        _source(api.url, tmp_path / "a").series(T0, T0 + H, now=T0 + 2 * H)  # 404: no answer for the path
    api.answers["/v3/carbon-intensity/past-range"] = (403, "unauthorized.json")
    with pytest.raises(InvalidInputError, match="free token reads the last 24 hours only"):
        _source(api.url, tmp_path / "b").series(T0, T0 + H, now=T0 + 30 * 24 * H)


def test_connection_refused_is_one_line(closed_port: int, tmp_path: Path) -> None:
    with pytest.raises(LiveSourceError) as caught:
        _source(f"http://127.0.0.1:{closed_port}/v3", tmp_path / "cache").series(T0, T0 + H, now=T0 + 2 * H)
    message = str(caught.value)
    assert message.startswith(f"cannot reach Electricity Maps at http://127.0.0.1:{closed_port}/v3 (connection refused)")
    assert "--intensity-series" in message and "\n" not in message


def test_an_answer_that_is_not_the_history_is_refused(api: FakeApi, tmp_path: Path) -> None:
    api.answers["/v3/carbon-intensity/history"] = (200, "unauthorized.json")  # JSON, but no history
    with pytest.raises(LiveSourceError, match="holds no 'history' or 'data' list"):
        _source(api.url, tmp_path / "cache").series(T0, T0 + H, now=T0 + 2 * H)


def test_the_token_is_not_in_the_repr() -> None:
    assert TOKEN not in repr(ElectricityMaps(TOKEN, "DE"))
