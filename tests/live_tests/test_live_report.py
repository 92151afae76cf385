"""`audit report` with the live source: a ledger whose trials ran in the fixture's hours is
charged them (checked by hand), the second report asks nothing, a refused token and an
unreachable server are one error line; and with the source off nothing connects at all."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from auditor.ledger import EnergyReading, Ledger, TrialRecord
from auditor.model.carbon import CarbonModel
from tests.live_tests.conftest import TOKEN, FakeApi

T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()  # older than 24 hours: past-range is asked
H = 3600.0


def _trial(key: str, start: float, end: float, kwh: float) -> TrialRecord:
    return TrialRecord(sweep="lr", trial_key=key, number=int(key), state="complete", start_time=start, end_time=end,
                       energy={"gpu": EnergyReading(kwh * 3.6e6, "counter")}, objective=[float(key)])


@pytest.fixture
def ledger(tmp_path: Path) -> str:
    with Ledger.open(tmp_path / "ledger.db") as store:
        store.ensure_sweep("lr", "optuna", attrs={"settings": CarbonModel(pue=1.5).to_record()})
        store.record_trial(_trial("0", T0 + 0.5 * H, T0 + 1.5 * H, 1.0))    # half at 331, half at 322 g/kWh
        store.record_trial(_trial("1", T0 + 1.25 * H, T0 + 1.75 * H, 2.0))  # all at 322
        return store.location


# By hand (past_range_DE.json: 00:00 331, 01:00 322 g/kWh), PUE 1.5:
# trial 0: 1.5 kWh x (331 + 322) / 2 = 326.5 g/kWh -> 489.75 g; trial 1: 3 kWh x 322 -> 966 g. Together 1.45575 kg.
BY_HAND_KG = (1.5 * (331 + 322) / 2 + 3 * 322) / 1000


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch, api: FakeApi) -> FakeApi:
    monkeypatch.setenv("AUDITOR_LIVE_INTENSITY", "electricitymaps")
    monkeypatch.setenv("AUDITOR_ELECTRICITYMAPS_URL", api.url)
    monkeypatch.setenv("AUDITOR_REGION", "Germany")  # the zone comes from the region: DE
    monkeypatch.setenv("ELECTRICITYMAPS_TOKEN", TOKEN)
    return api


def test_report_charges_the_live_hours_and_asks_once(audit, live: FakeApi, ledger: str) -> None:
    live.answers["/v3/carbon-intensity/past-range"] = (200, "past_range_DE.json")
    result = audit("report", "--ledger", ledger, "--format", "json")
    assert result.code == 0, result.err
    sweep = json.loads(result.out)["sweeps"][0]
    assert sweep["co2e_kg"] == pytest.approx(BY_HAND_KG, rel=1e-12)
    assert sweep["region"]["code"] == "hourly" and sweep["settings_from"] == "override"
    assert sweep["intensity_series"]["path"] == "Electricity Maps zone DE"
    assert sweep["intensity_series"]["kind"] == "Electricity Maps API, lifecycle"
    [request] = live.seen
    assert request.path == "/v3/carbon-intensity/past-range" and request.headers["auth-token"] == TOKEN
    assert request.query == {"zone": "DE", "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T02:00:00Z"}
    text = audit("report", "--ledger", ledger)
    assert text.code == 0 and len(live.seen) == 1  # the second report reads the cache
    assert "1.46 kg CO2e" in text.out and TOKEN not in text.out + text.err


def test_shift_over_the_live_hours(audit, live: FakeApi, ledger: str) -> None:
    """The answer holds 00:00 to 06:00 (331, 322, 309, 301, 296, 298): started at 03:00 instead of
    00:30, trial 0 runs 03:00-04:00 at 301 (451.5 g) and trial 1 03:45-04:15 at 298.5 (895.5 g)."""
    live.answers["/v3/carbon-intensity/past-range"] = (200, "past_range_DE.json")
    result = audit("report", "--ledger", ledger, "--shift", "3h", "--format", "json")
    assert result.code == 0, result.err
    shift = json.loads(result.out)["sweeps"][0]["shift"]
    assert shift["best_start"] == T0 + 3 * H and shift["shifted_co2e_kg"] == pytest.approx((451.5 + 895.5) / 1000, rel=1e-12)
    assert len(live.seen) == 1  # the first answer already reached past the window


def test_report_offline_from_the_cache(audit, live: FakeApi, ledger: str, monkeypatch: pytest.MonkeyPatch,
                                       closed_port: int) -> None:
    live.answers["/v3/carbon-intensity/past-range"] = (200, "past_range_DE.json")
    assert audit("report", "--ledger", ledger).code == 0
    monkeypatch.setenv("AUDITOR_ELECTRICITYMAPS_URL", f"http://127.0.0.1:{closed_port}/v3")
    result = audit("report", "--ledger", ledger, "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["totals"]["co2e_kg"] == pytest.approx(BY_HAND_KG, rel=1e-12)


def test_a_refused_token_is_one_error_line(audit, live: FakeApi, ledger: str) -> None:
    live.answers["/v3/carbon-intensity/past-range"] = (401, "unauthorized.json")
    result = audit("report", "--ledger", ledger)
    assert result.code == 2 and result.out == ""
    assert result.err.count("\n") == 1 and result.err.startswith("error: Electricity Maps refused the token (HTTP 401")
    assert "Traceback" not in result.err and TOKEN not in result.err


def test_an_unreachable_server_is_one_error_line(audit, live: FakeApi, ledger: str, monkeypatch: pytest.MonkeyPatch,
                                                 closed_port: int) -> None:
    monkeypatch.setenv("AUDITOR_ELECTRICITYMAPS_URL", f"http://127.0.0.1:{closed_port}/v3")
    result = audit("report", "--ledger", ledger)
    assert result.code == 1 and result.out == ""
    assert result.err.count("\n") == 1
    assert result.err.startswith(f"error: cannot reach Electricity Maps at http://127.0.0.1:{closed_port}/v3 (connection refused)")
    assert "--intensity-series" in result.err


def test_no_token_or_no_zone_says_what_to_set(audit, live: FakeApi, ledger: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ELECTRICITYMAPS_TOKEN")
    result = audit("report", "--ledger", ledger)
    assert result.code == 2 and "no token is set: export ELECTRICITYMAPS_TOKEN=" in result.err
    monkeypatch.setenv("ELECTRICITYMAPS_TOKEN", TOKEN)
    monkeypatch.setenv("AUDITOR_REGION", "545 g/kWh")
    result = audit("report", "--ledger", ledger)
    assert result.code == 2 and "no zone is known: set electricitymaps_zone" in result.err
    assert live.seen == []


def test_a_series_file_wins_over_the_live_source(audit, live: FakeApi, ledger: str, tmp_path: Path) -> None:
    grid = tmp_path / "grid.csv"
    grid.write_text("timestamp,intensity_g_per_kwh\n2026-01-01T00:00Z,100\n2026-01-01T01:00Z,100\n")
    result = audit("report", "--ledger", ledger, "--intensity-series", str(grid), "--format", "json")
    assert json.loads(result.out)["totals"]["co2e_kg"] == pytest.approx(4.5 * 0.1, rel=1e-12)
    assert live.seen == []


def test_the_token_is_never_printed_by_audit_config(audit, live: FakeApi) -> None:
    shown = audit("config", "--format", "json")
    assert TOKEN not in shown.out
    assert audit("config", "set", "electricitymaps_token", TOKEN).out.startswith("electricitymaps_token = (hidden) written to")
    data = json.loads(audit("config", "--format", "json").out)
    assert data["electricitymaps_token"]["value"] == "(set, hidden)" and data["live_intensity"]["value"] == "electricitymaps"
    assert TOKEN not in audit("config").out


NO_NETWORK = r'''
import socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(args)
    raise OSError("no network in this test")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
import auditor, auditor.cli, auditor.config, auditor.live.electricitymaps
from auditor.cli import main
code = main(["report", "--ledger", sys.argv[1], "--format", "json"])
print("ATTEMPTS", len(attempts), "CODE", code, file=sys.stderr)
'''


def test_nothing_connects_at_import_or_in_a_report_with_the_source_off(ledger: str, tmp_path: Path) -> None:
    """A fresh interpreter whose sockets refuse to connect (and count the tries) imports the
    auditor and runs a report with the default settings: no try at all."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state"),
           "ELECTRICITYMAPS_TOKEN": TOKEN}  # a token alone turns nothing on
    done = subprocess.run([sys.executable, "-c", NO_NETWORK, ledger], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert "ATTEMPTS 0 CODE 0" in done.stderr, done.stderr
    assert json.loads(done.stdout)["totals"]["co2e_kg"] == pytest.approx(4.5 * 0.475)  # the yearly world average
