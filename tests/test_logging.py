"""What the auditor says reaches the user once, in the program's own log format where it has one:
``auditor: ...`` on stderr without logging set up, never ``auditor: auditor: ...`` under a
``%(name)s`` format, and the cost forecasts at INFO (shown once asked for). Each case runs in a
fresh interpreter: pytest's own log capture is a root handler."""

from __future__ import annotations

import subprocess
import sys

import pytest

SEARCH = """
import logging, sys
{setup}
import optuna
from auditor.integrations.optuna import AuditCallback
from auditor.meters.cpu import CpuTimeSource
from auditor.meters.sampler import Meter
optuna.logging.set_verbosity(optuna.logging.WARNING)
with Meter([CpuTimeSource()]) as meter:
    study = optuna.create_study(study_name="logs")
    audit = AuditCallback(study, ledger=sys.argv[1], budget="1 GPUh", meter=meter, n_trials=20)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=6, callbacks=[audit])
    audit.close()
"""


def _stderr(tmp_path, setup: str) -> str:
    done = subprocess.run([sys.executable, "-c", SEARCH.format(setup=setup), str(tmp_path / "l.db")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.mark.parametrize(("setup", "line"), [
    ("", "auditor: the 1 GPUh budget counts GPU-hours"),  # no logging set up: our name, once
    ("logging.basicConfig(format='%(name)s: %(message)s')", "auditor: the 1 GPUh budget counts GPU-hours"),
    ("logging.basicConfig(format='%(levelname)s %(name)s - %(message)s')", "WARNING auditor - the 1 GPUh budget counts"),
])
def test_a_warning_is_shown_once_in_the_programs_format(tmp_path, setup: str, line: str) -> None:
    err = _stderr(tmp_path, setup)
    assert err.count("the 1 GPUh budget counts GPU-hours") == 1 and line in err, err
    assert "auditor: auditor:" not in err
    assert "forecast after" not in err  # INFO: not shown unless asked for


def test_the_forecasts_are_info_shown_once_asked_for(tmp_path) -> None:
    err = _stderr(tmp_path, "logging.getLogger('auditor').setLevel(logging.INFO)")
    assert "auditor: forecast after 5 finished trials: at this rate 20 trials cost" in err, err
