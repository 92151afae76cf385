"""Records of trials measured in other processes (Ray's workers and node meters)."""

from __future__ import annotations

import pytest

from auditor.ledger import TrialState
from auditor.search.figures import result_metrics
from auditor.search.remote import Ending, final_record, running_record, usage_of

LATEST = result_metrics({"gpu": 7200.0, "cpu": 360.0, "memory": 36.0}, 20.0, "node-a")
FINAL = {
    "node_id": "node-a", "gpu_energy_j": 9000.0, "gpu_energy_method": "counter", "gpu_seconds": 25.0,
    "devices": [{"key": "gpu:0", "index": 0, "model": "H100", "node": "node-a"}], "flags": [],
    "worker": {"cpu": {"joules": 400.0, "method": "rapl"}, "memory": {"joules": 40.0, "method": "estimate"}, "finished": True},
}


def ending(**kwargs: object) -> Ending:
    fields = {"failed": False, "cut_short": False, "by_budget": False, "end": 100.0, "latest": LATEST,
              "params": {"lr": 0.1, "layers": [2, 3]}, "name": "trial_0_lr=0.1"}
    return Ending(**{**fields, **kwargs})  # type: ignore[arg-type]


def test_the_figures_a_worker_reports_add_up() -> None:
    assert LATEST["auditor/energy_kwh"] == pytest.approx((7200 + 360 + 36) / 3.6e6)
    usage = usage_of(LATEST)
    assert usage.energy_kwh == LATEST["auditor/energy_kwh"] and usage.gpu_hours == pytest.approx(20 / 3600)
    assert usage_of({}).energy_kwh == 0.0  # a result from a trial without the wrapper


def test_a_finished_trial_takes_its_node_meters_and_its_workers_figures() -> None:
    record = final_record("s", "t0", 50.0, ending(), FINAL)
    assert record.state is TrialState.COMPLETE
    assert record.energy["gpu"].joules == 9000.0 and record.energy["gpu"].method == "counter"
    assert record.energy["cpu"].joules == 400.0 and record.energy["cpu"].method == "rapl"
    assert record.gpu_seconds == 25.0 and record.devices == FINAL["devices"]
    assert record.params == {"lr": 0.1, "layers": "[2, 3]"}
    assert record.flags == ["node: node-a"] and (record.start_time, record.end_time) == (50.0, 100.0)


@pytest.mark.parametrize(("kwargs", "worker_finished", "state"), [
    ({"failed": True}, True, TrialState.FAILED),
    ({"cut_short": True}, True, TrialState.STOPPED),
    ({"by_budget": True}, True, TrialState.STOPPED),
    ({}, False, TrialState.STOPPED),
    ({}, True, TrialState.COMPLETE),
])
def test_how_a_trial_ended(kwargs: dict[str, bool], worker_finished: bool, state: TrialState) -> None:
    final = {**FINAL, "worker": {**FINAL["worker"], "finished": worker_finished}}
    record = final_record("s", "t0", 50.0, ending(**kwargs), final)
    assert record.state is state
    assert ("stopped-by-budget" in record.flags) == kwargs.get("by_budget", False) == record.stopped_by_budget


def test_figures_that_never_came_fall_back_on_the_last_result_and_say_so() -> None:
    record = final_record("s", "t0", 50.0, ending(), None)
    assert record.energy["gpu"].joules == 7200.0 and record.gpu_seconds == 20.0
    assert "energy-up-to-last-report" in record.flags
    bare = final_record("s", "t1", 50.0, ending(latest={}), None)
    assert bare.energy == {} and "energy-missing" in bare.flags


def test_a_running_trials_heartbeat_row() -> None:
    record = running_record("s", "t0", "x" * 400, 50.0, {"lr": 0.1}, LATEST)
    assert record.state is TrialState.RUNNING and record.flags == ["heartbeat"]
    assert len(record.name or "") == 255
    assert record.energy_joules == pytest.approx(7200 + 360 + 36)


@pytest.mark.parametrize(("reached_end", "state"), [(False, TrialState.STOPPED), (True, TrialState.COMPLETE)])
def test_a_worker_killed_before_it_could_say_was_stopped_unless_it_reached_the_end(
        reached_end: bool, state: TrialState) -> None:
    """Ray kills the actor of a trial its scheduler stops; a loaded machine kills it before the
    trial's code hands its figures over: its node meter answers, with no word from the worker."""
    final = {**FINAL, "worker": {}, "flags": ["closed-at-experiment-end"]}
    record = final_record("s", "t0", 50.0, ending(reached_end=reached_end), final)
    assert record.state is state
    assert final_record("s", "t0", 50.0, ending(), None).state is TrialState.COMPLETE  # nothing known: as Ray says
