from __future__ import annotations

import json
from pathlib import Path

from auditor import __version__
from auditor.ledger import Ledger


def test_version(audit) -> None:
    assert audit("--version").out.strip() == f"hpo-auditor {__version__}"


def test_no_arguments_shows_help(audit) -> None:
    result = audit()
    assert "estimate" in result.out and "doctor" in result.out


def test_regions_search_and_json(audit) -> None:
    table = audit("regions", "europe-west4")
    assert table.code == 0 and "gcp:europe-west4" in table.out and "1.09" in table.out
    rows = json.loads(audit("regions", "germany", "--format", "json").out)
    assert rows[0]["region"] == "DE" and rows[0]["year"] >= 2021


def test_hardware_list_and_json(audit) -> None:
    rows = json.loads(audit("hardware", "--type", "cpu", "--format", "json").out)
    assert rows and all(r["type"] == "cpu" for r in rows)
    assert "H100 PCIe" in audit("hardware", "h100").out


def test_doctor_without_gpu_or_rapl_says_why(audit, clean_environment: Path) -> None:
    result = audit("doctor")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].startswith("GPU")
    assert any(line.startswith("CPU") for line in lines)
    assert any(line.startswith("RAPL") for line in lines)
    assert "Region not set: carbon will use the world average (475 g/kWh)" in result.out
    assert "not created yet" in result.out
    assert not (clean_environment / ".auditor").exists()  # doctor creates no ledger


def test_doctor_json_and_existing_ledger(audit, clean_environment: Path) -> None:
    with Ledger.open(clean_environment / "l.db") as ledger:
        ledger.ensure_sweep("a")
    data = json.loads(audit("doctor", "--ledger", str(clean_environment / "l.db"), "--format", "json").out)
    assert data["ledger"]["ok"] and "1 sweep, 0 trials" in data["ledger"]["status"]
    assert set(data) == {"gpu", "rapl", "cpu", "region", "ledger", "settings_refused"} and data["settings_refused"] == []
    assert data["region"]["is_fallback"]


def test_config_shows_sources_and_set_writes_auditor_toml(audit, clean_environment: Path, monkeypatch) -> None:
    monkeypatch.setenv("AUDITOR_PUE", "1.2")
    shown = json.loads(audit("config", "--format", "json").out)
    assert shown["pue"] == {"value": 1.2, "source": "AUDITOR_PUE"}
    assert shown["ledger"] == {"value": ".auditor/ledger.db", "source": "default"}
    result = audit("config", "set", "region", "DE")
    assert result.code == 0
    assert (clean_environment / "auditor.toml").read_text() == 'region = "DE"\n'
    audit("config", "set", "budget-mode", "hard")
    shown = json.loads(audit("config", "--format", "json").out)
    assert shown["region"]["value"] == "DE" and shown["region"]["source"].endswith("auditor.toml")
    assert shown["budget_mode"]["value"] == "hard"
    table = audit("config").out
    assert any(line.split()[:2] == ["region", "DE"] for line in table.splitlines() if line.strip())


def test_config_set_keeps_comments(audit, clean_environment: Path) -> None:
    (clean_environment / "auditor.toml").write_text("# our lab\nregion = \"FR\"  # Paris\n")
    audit("config", "set", "pue", "1.1")
    text = (clean_environment / "auditor.toml").read_text()
    assert "# our lab" in text and "# Paris" in text and "pue = 1.1" in text


def test_global_ledger_option_reaches_every_command(audit, clean_environment: Path) -> None:
    target = clean_environment / "elsewhere.db"
    with Ledger.open(target) as ledger:
        ledger.ensure_sweep("x")
    shown = json.loads(audit("--ledger", str(target), "config", "--format", "json").out)
    assert shown["ledger"] == {"value": str(target), "source": "argument"}
    report = json.loads(audit("--ledger", str(target), "report", "--format", "json").out)
    assert [s["name"] for s in report["sweeps"]] == ["x"]
    assert audit("--ledger", str(target), "estimate", "--hours", "1", "--watts", "1").code == 0
