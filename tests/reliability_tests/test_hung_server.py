"""A ledger server that stops answering, through a proxy on 127.0.0.1 that stops forwarding:
the search does not wait on it (the budget waits once, at most 5 s), every finished trial is on
local disk within about a second of its end, a kill during the outage loses at most the trial in
flight, and everything lands once the server answers again. On PostgreSQL and MariaDB."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
from auditor.integrations.optuna import AuditCallback
from sqlalchemy.engine import make_url

from auditor.budget.guard import SERVER_WAIT_S
from auditor.ledger import Ledger, TrialState
from auditor.ledger.spool import held_back
from auditor.ledger.writer import SPOOL_AFTER_S
from tests.reliability_tests.proxy import StallingProxy

HERE = Path(__file__).resolve().parent
KILLED = HERE / "optuna_killed.py"
OUTAGE_S = 12.0


@pytest.fixture(params=["postgresql", "mariadb"])
def proxied(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, StallingProxy]]:
    """(the server's own URL, the same through a stalling proxy, the proxy)."""
    direct = request.getfixturevalue("postgres_url" if request.param == "postgresql" else "mariadb_url")
    url = make_url(direct)
    with StallingProxy(url.host or "127.0.0.1", url.port or (5432 if request.param == "postgresql" else 3306)) as proxy:
        yield direct, proxy.url_for(direct), proxy


def _numbers(ledger: str, sweep: str) -> set[int]:
    with Ledger.open(ledger) as store:
        return {t.number for t in store.trials(sweep) if t.state is TrialState.COMPLETE}  # type: ignore[misc]


def _wait_for(path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


@pytest.mark.slow
def test_a_budgeted_search_goes_on_through_a_silent_server_and_writes_everything_after(
    proxied: tuple[str, str, StallingProxy],
) -> None:
    direct, through_proxy, proxy = proxied
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="outage")
    audit = AuditCallback(ledger=through_proxy, budget="1 kWh").attach(study)
    location = Ledger.location_of(through_proxy)
    outage: dict[str, float | int] = {}
    ends: list[float] = []  # when each trial ended, as the search saw it
    spooled: list[tuple[int, int]] = []  # (trials finished more than a second ago, trials in the spool)

    def objective(trial: optuna.Trial) -> float:
        now = time.monotonic()
        if trial.number == 5:
            proxy.stall()
            outage.update(start=now, first=trial.number)
        elif "start" in outage and "end" not in outage:
            older = sum(1 for end in ends[outage["first"]:] if now - end > SPOOL_AFTER_S + 0.5)
            spooled.append((older, held_back(location, include_live=True)))
            if now - outage["start"] > OUTAGE_S:
                proxy.resume()
                outage.update(end=now, last=trial.number)
        time.sleep(0.1)
        return trial.suggest_float("x", 0, 1)

    def ended(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        ends.append(time.monotonic())
        if "end" in outage and trial.number >= outage["last"] + 5:
            study.stop()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "trials held back": said once, tested elsewhere
        study.optimize(objective, n_trials=500, callbacks=[audit, ended])
        audit.close()

    during = [b - a for a, b in itertools.pairwise(ends) if outage["start"] <= b and a < outage["end"]]
    waits = sorted(gap for gap in during if gap > 1.0)
    print(f"\n{proxy.target[1]}: {len(during)} trials in the {outage['end'] - outage['start']:.1f} s outage, "
          f"waits on the ledger {[round(w, 2) for w in waits]} s, most in the spool {max(h for _, h in spooled)}")
    assert len(during) >= 20, during  # the search went on through the outage
    assert sum(waits) <= SERVER_WAIT_S + SPOOL_AFTER_S + 3.0, waits  # it waited on the ledger once, not per trial
    assert len(waits) <= 2, waits
    assert spooled and all(held >= older for older, held in spooled), spooled  # on disk within about a second
    assert max(held for _, held in spooled) >= len(during) - 3
    numbers = {t.number for t in study.trials if t.state is optuna.trial.TrialState.COMPLETE}
    assert _numbers(direct, "outage") == numbers  # all of them, once it answered again
    assert held_back(location, include_live=True) == 0


@pytest.mark.slow
def test_a_kill_during_an_outage_loses_no_finished_trial(
    proxied: tuple[str, str, StallingProxy], tmp_path: Path, audit: Callable[..., object]
) -> None:
    direct, through_proxy, proxy = proxied
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    markers = tmp_path / "markers"
    markers.mkdir()
    process = subprocess.Popen([sys.executable, str(KILLED), storage, through_proxy, str(markers), "50"],
                               stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(markers / "started-2")
        proxy.stall()
        _wait_for(markers / "started-8")
    finally:
        process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate(timeout=30)
    finished = {t.number for t in optuna.load_study(study_name="killed", storage=storage).trials if t.state.is_finished()}
    assert finished == set(range(8))
    location = Ledger.location_of(through_proxy)
    assert held_back(location) >= 8 - 2, stderr  # trials 2..7 finished during the outage, all on disk

    proxy.resume()
    result = audit("--ledger", through_proxy, "report", "--format", "json")  # the next command writes them
    assert result.code == 0, result.err  # type: ignore[attr-defined]
    assert json.loads(result.out)["held_back_trials"] == 0  # type: ignore[attr-defined]
    assert _numbers(direct, "killed") == finished  # every finished trial, none twice
    assert held_back(location) == 0
