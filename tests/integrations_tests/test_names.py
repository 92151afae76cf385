"""Any name Optuna or Ray Tune accepts is recorded and found again by that same name: empty,
longer than the ledger's column, with a line break or a NUL, differing only in case or a
trailing space (which MySQL's and MariaDB's text collations took for one), on every backend."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from auditor.integrations.optuna import AuditCallback

from auditor.ledger import Ledger

NAMES = ["", "x" * 300, "a\nb", "lr", "LR", "lr ", "a\x00b", "\U0001f525", "[bold]x"]


def _search(name: str, ledger: str, trials: int) -> None:
    study = optuna.create_study(study_name=name)
    audit = AuditCallback(study, ledger=ledger)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=trials, callbacks=[audit])
    audit.close()


def test_every_study_name_is_recorded_and_found_again(ledger_url: str) -> None:
    for i, name in enumerate(NAMES):
        _search(name, ledger_url, trials=i + 1)
    with Ledger.open(ledger_url) as ledger:
        assert len(ledger.sweeps()) == len(NAMES)  # none merged, none lost
        for i, name in enumerate(NAMES):
            assert ledger.get_sweep(name) is not None, name
            assert ledger.count_trials(name) == i + 1, name
            assert len(ledger.trials(name)) == i + 1, name


def test_the_cli_finds_a_sweep_by_its_own_name_and_shows_it_on_one_line(tmp_path: Path, audit: Callable[..., object]) -> None:
    ledger = str(tmp_path / "l.db")
    for i, name in enumerate(("", "a\nb", "x" * 300)):
        _search(name, ledger, trials=i + 1)
    listing = audit("sweeps", "--ledger", ledger)
    assert listing.code == 0
    rows = listing.out.splitlines()[1:]
    assert sum(row.startswith('""') for row in rows) == 1 and sum(row.startswith("a\\nb ") for row in rows) == 1
    assert not any(row.strip() == "b" for row in rows)  # the line break did not start a row
    for i, name in enumerate(("", "a\nb", "x" * 300)):
        shown = audit("trials", name, "--ledger", ledger, "--format", "json")
        assert shown.code == 0, shown.err
        assert len(json.loads(shown.out)) == i + 1
        report = audit("report", "--sweep", name, "--ledger", ledger, "--format", "json")
        assert report.code == 0, report.err
        assert json.loads(report.out)["totals"]["trials"] == i + 1
    for name, label in (("", '""/'), ("a\nb", "a\\nb/")):  # the closing sentence names the final run on its line
        report = audit("report", "--sweep", name, "--ledger", ledger)
        [sentence] = [line for line in report.out.splitlines() if line.startswith("The final run (")]
        assert sentence.startswith(f"The final run ({label}") and "cost" in sentence, sentence


@pytest.mark.slow
def test_a_ray_experiment_name_with_a_line_break_and_case(tmp_path: Path, ray_session: None) -> None:
    from auditor.integrations.ray_tune import AuditLoggerCallback
    from ray import tune

    ledger = str(tmp_path / "l.db")
    for name, trials in (("Exp\nA", 1), ("exp\na", 2)):
        audit = AuditLoggerCallback(ledger=ledger)
        tune.Tuner(lambda config: tune.report({"loss": config["lr"]}),
                   param_space={"lr": tune.grid_search([0.1 * (i + 1) for i in range(trials)])},
                   run_config=tune.RunConfig(name=name, storage_path=str(tmp_path / "ray"), callbacks=[audit], verbose=0)).fit()
    with Ledger.open(ledger) as store:
        assert sorted(s.name for s in store.sweeps()) == ["Exp\nA", "exp\na"]
        assert store.count_trials("Exp\nA") == 1 and store.count_trials("exp\na") == 2
