from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

STRUBELL = ["estimate", "--hours", "84", "--watts", "1515.43", "--pue", "1.58", "--intensity", "0.954 lb/kWh"]


def test_strubell_table_3_in_json(audit) -> None:
    result = audit(*STRUBELL, "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["facility_kwh"] == pytest.approx(201, abs=0.5)
    assert data["co2e_lb"] == pytest.approx(192, abs=0.5)
    assert data["gpu_hours"] == 84
    assert data["energy_kwh"] == pytest.approx(127.296)
    assert data["co2e_kg"] == pytest.approx(data["co2e_lb"] / 2.20462262185)
    assert data["cost_usd"] is None
    assert data["pue"] == 1.58
    assert data["intensity_g_per_kwh"] == pytest.approx(432.73, abs=0.01)
    assert set(data["sources"]) == {"power", "intensity", "pue", "price"}


def test_table_output(audit) -> None:
    result = audit(*STRUBELL)
    assert result.code == 0
    assert "Facility   201.1 kWh" in result.out
    assert "(191.9 lb)" in result.out
    assert "give --price-per-gpu-hour or --price-per-kwh" in result.out


def test_gpu_model_count_region_and_price(audit) -> None:
    result = audit("estimate", "--hours", "10", "--gpu", "H100 SXM", "--count", "8", "--region", "gcp:europe-west4",
                   "--price-per-gpu-hour", "2.5", "--format", "json")
    data = json.loads(result.out)
    assert data["gpu_hours"] == 80
    assert data["energy_kwh"] == pytest.approx(700 * 8 * 10 / 1000)
    assert data["pue"] == pytest.approx(1.09)  # published for the region
    assert data["cost_usd"] == pytest.approx(200.0)
    assert "H100 SXM" in data["sources"]["power"]
    assert any("upper estimate" in note for note in data["notes"])


def test_without_region_the_world_average_is_announced(audit) -> None:
    data = json.loads(audit("estimate", "--hours", "1", "--watts", "1000", "--format", "json").out)
    assert data["intensity_g_per_kwh"] == 475
    assert any("no region set" in note for note in data["notes"])


def test_region_from_project_settings(audit, clean_environment: Path) -> None:
    (clean_environment / "auditor.toml").write_text('region = "FR"\nprice_per_kwh = 0.2\n')
    data = json.loads(audit("estimate", "--hours", "1", "--watts", "1000", "--format", "json").out)
    assert data["region"] == "FR"
    assert data["cost_usd"] == pytest.approx(1.58 * 0.2)
    overridden = json.loads(audit("estimate", "--hours", "1", "--watts", "1000", "--region", "DE", "--format", "json").out)
    assert overridden["region"] == "DE"


def test_console_script_runs_as_a_real_process(tmp_path: Path) -> None:
    audit_bin = Path(sys.executable).parent / "audit"
    ok = subprocess.run([audit_bin, *STRUBELL, "--format", "json"], capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0 and json.loads(ok.stdout)["co2e_lb"] == pytest.approx(192, abs=0.5)
    bad = subprocess.run([audit_bin, "estimate", "--hours", "1", "--watts", "5", "--region", "Germny"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr == "error: unknown region 'Germny'. Did you mean: DE (Germany)? See `audit regions`.\n"


def test_bloom_embodied_and_water_in_json(audit) -> None:
    result = audit("estimate", "--hours", "1082990", "--watts", "400", "--embodied-kg", "462.5",
                   "--lifetime-years", "6", "--utilization", "0.85", "--wue", "1.8", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["embodied_co2e_kg"] / 1000 == pytest.approx(11.2, rel=0.01)
    assert data["total_co2e_kg"] == pytest.approx(data["co2e_kg"] + data["embodied_co2e_kg"])
    assert data["water_l"] == pytest.approx(data["energy_kwh"] * 1.8)
    assert {"embodied", "wue"} <= set(data["sources"])


def test_embodied_from_the_table_for_a_gpu_model(audit) -> None:
    result = audit("estimate", "--hours", "10", "--gpu", "A100 SXM4 80 GB", "--embodied")
    assert result.code == 0, result.err
    assert "Embodied" in result.out and "Luccioni" in result.out and "Total CO2e" in result.out
    assert "e+" not in result.out


def test_embodied_lines_only_when_asked(audit) -> None:
    result = audit(*STRUBELL, "--format", "json")
    assert "embodied_co2e_kg" not in json.loads(result.out)
