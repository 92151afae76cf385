"""Names from a shared ledger cannot be turned against whoever reads the report (issues 18, 19):
no live formula in any CSV we write, no terminal escape or bidi override in any human format,
no NaN or Infinity in any JSON."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from auditor.ledger import EnergyReading, Ledger, TrialRecord

FORMULA = '=HYPERLINK("http://x","y")'
ESCAPES = "evil\x1b]0;pwned\x07\x1b[2Jname"
BIDI = "report\u202egnp.exe"
MARKUP = "[bold red]loud[/] [/oops]"
CARRIAGE = "a\r=cmd|' /C calc'!A0"  # a bare CR: Excel ends the row there, so the formula would start the next
LINK = "see [the results](http://evil.example)"
NAMES = [FORMULA, ESCAPES, BIDI, MARKUP, "-2+3+cmd|' /C calc'!A0", "@SUM(A1)", CARRIAGE, LINK]


@pytest.fixture
def hostile_ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger:
        for index, name in enumerate(NAMES):
            ledger.ensure_sweep(name, "optuna", {"settings": {"region": "FR", "g_co2e_per_kwh": 56.0, "pue": 1.2}})
            ledger.record_trials([
                TrialRecord(sweep=name, trial_key=str(i), number=i, name=f"{ESCAPES}{i}", state=state, start_time=1.7e9,
                            end_time=1.7e9 + 60, gpu_seconds=60.0, params={"formula": "=1+1", "nan": math.nan, "inf": -math.inf},
                            objective=[0.5 + index], energy={"gpu": EnergyReading(3600.0 * (i + 1), "counter")})
                for i, state in enumerate(["complete", "pruned", "failed"])
            ])
    return path


def _strict_json(text: str) -> object:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in JSON output")
    return json.loads(text, parse_constant=refuse)


def test_no_csv_cell_is_a_formula(hostile_ledger: Path, audit, tmp_path: Path) -> None:
    report = audit("--ledger", str(hostile_ledger), "report", "--format", "csv")
    exported = audit("--ledger", str(hostile_ledger), "export", "codecarbon", "--out", str(tmp_path / "emissions.csv"))
    assert report.code == 0 and exported.code == 0, exported.err
    for text, numeric in ((report.out, ("trials", "energy_kwh")), ((tmp_path / "emissions.csv").read_text(), ("duration", "energy_consumed"))):
        rows = list(csv.reader(io.StringIO(text)))
        cells = [cell for row in rows[1:] for cell in row]
        live = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(c)]
        assert live == [] and any(c == "'" + FORMULA for c in cells)
        assert "\r" not in text and "\x1b" not in text  # a CR or an escape never reaches a spreadsheet or terminal raw
        assert any(c.startswith("a\\r=cmd") for c in cells) and any("\\x1b]0;pwned" in c for c in cells)  # shown escaped
        assert all(_is_number(row[column]) for row in csv.DictReader(io.StringIO(text)) for column in numeric)  # numbers stay numbers


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("command", [
    ["report"], ["report", "--format", "markdown"], ["report", "--format", "statement"], ["report", "--format", "html"],
    ["sweeps"], ["trials", ESCAPES], ["trials", BIDI], ["doctor"],
])
def test_no_terminal_escape_or_bidi_override_reaches_a_human_format(hostile_ledger: Path, audit, command: list[str]) -> None:
    result = audit("--ledger", str(hostile_ledger), *command)
    assert result.code == 0, result.err
    text = result.out + result.err
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    if command[0] in ("report", "sweeps") and command[-1] != "statement":
        assert "\\x1b" in text and "\\u202e" in text  # shown escaped, not dropped
    if command == ["report"]:
        assert "[bold red]loud[/]" in text  # printed as it is, not read as markup


@pytest.mark.parametrize("command", [["report", "--format", "json"], ["sweeps", "--format", "json"], ["trials", BIDI, "--format", "json"]])
def test_json_never_holds_nan_or_infinity(hostile_ledger: Path, audit, command: list[str]) -> None:
    result = audit("--ledger", str(hostile_ledger), *command)
    assert result.code == 0, result.err
    data = _strict_json(result.out)
    if command[0] == "trials":
        assert data[0]["params"] == {"formula": "=1+1", "nan": None, "inf": None}  # type: ignore[index]


def test_table_to_a_file_is_the_table_not_markdown(hostile_ledger: Path, audit, tmp_path: Path) -> None:
    out = tmp_path / "report.txt"
    result = audit("--ledger", str(hostile_ledger), "report", "--format", "table", "--out", str(out))
    assert result.code == 0
    text = out.read_text()
    assert "IT " in text and "facility " in text and "|---" not in text and "\x1b" not in text


def test_the_statement_prints_no_live_markdown_link(hostile_ledger: Path, audit) -> None:
    """Before: the statement's Markdown printed names as they were, links live."""
    with Ledger.open(hostile_ledger) as ledger:  # a budget makes the statement name its sweep
        ledger.ensure_sweep(LINK + " 2", "optuna", {"budget": {"text": "1 kWh", "metric": "energy_kwh", "limit": 1e-6,
                                                             "scope": "sweep", "mode": "warn"}})
        ledger.record_trials([TrialRecord(sweep=LINK + " 2", trial_key="0", state="complete", start_time=1.7e9,
                                          end_time=1.7e9 + 60, energy={"gpu": EnergyReading(3600.0, "counter")})])
    result = audit("--ledger", str(hostile_ledger), "report", "--format", "statement")
    markdown = result.out.split("LaTeX:")[0]
    assert "the results" in markdown and "[the results](http" not in markdown and "\\[the results\\]" in markdown
