"""The terminal tables at 120 columns: every line fits, header words stay whole, and a sweep's
name stays on its row however long or odd it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.ledger import EnergyReading, Ledger, TrialRecord

NAMES = ["demo-20261202-202910", "x" * 300, "a\nb", "lr "]


def _ledger(path: Path) -> str:
    with Ledger.open(path) as store:
        for name in NAMES:
            store.ensure_sweep(name, "optuna")
            for i in range(3):
                store.record_trial(TrialRecord(sweep=name, trial_key=str(i), number=i, state="complete", start_time=i,
                                               end_time=i + 1, gpu_seconds=1.0, energy={"gpu": EnergyReading(300.0, "counter")}))
    return str(path)


WIDEST = ["--price-per-kwh", "0.3", "--embodied-kg", "table", "--wue", "1.8"]


@pytest.mark.parametrize("extra", [[], ["--price-per-kwh", "0.3"], ["--price-per-kwh", "0.3", "--embodied-kg", "table"], WIDEST])
def test_the_report_table_fits_120_columns_with_its_header_words_whole(audit, tmp_path: Path, monkeypatch, extra) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    result = audit("report", "--ledger", _ledger(tmp_path / "l.db"), *extra)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    table = lines[1:lines.index(next(line for line in lines if line.startswith("whole project"))) + 1]
    assert all(len(line.rstrip()) <= 120 for line in table)
    header_lines = table[:next(i for i, line in enumerate(table) if line.startswith("sweep")) + 1]
    tokens = " ".join(header_lines).split()
    trials_header = [t for t in tokens if any(part in t for part in ("done", "stop", "fail"))]
    assert "".join(trials_header) == "(done/stopped/failed)"  # whole, or broken only after a slash
    assert all(t.endswith(("/", ")")) for t in trials_header), trials_header
    for word in ("sweep", "framework", "trials", "facility", "measured", *(["embodied", "water"] if "--wue" in extra else [])):
        assert word in tokens, (word, header_lines)
    assert all(len(t) > 1 or t in "JLg" for t in tokens), tokens  # no header word folded into pieces
    rows = [line for line in table if line.startswith(("demo", "x", "a\\nb", '"lr "'))]
    assert len(rows) == 4  # one row each: the line break shown escaped, the long name cut with an ellipsis
    assert any("…" in row for row in rows)


def test_sweeps_lists_each_name_on_one_row(audit, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    result = audit("sweeps", "--ledger", _ledger(tmp_path / "l.db"))
    lines = result.out.splitlines()
    assert result.code == 0 and len(lines) == 1 + len(NAMES)
    assert all(len(line.rstrip()) <= 120 for line in lines)
    assert sum(line.startswith('"lr "') for line in lines) == 1 and sum(line.startswith("a\\nb ") for line in lines) == 1
