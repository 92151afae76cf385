"""The node meter a cluster hosts (one per machine) and the meter of a trial's own process."""

from __future__ import annotations

import time

import pytest

from auditor.meters.node import NodeMeter, TrialProcessMeter
from auditor.meters.simulated import PowerProfile, SimulatedGpuSource


def node(*watts: float) -> NodeMeter:
    return NodeMeter("node-a", [SimulatedGpuSource([PowerProfile.constant(w) for w in watts])])


def test_trials_sharing_a_gpu_split_its_energy_and_count_nothing_twice() -> None:
    meter = node(400.0)
    try:
        assert meter.begin("t1", [0]) == ["gpu:SIM-0"]
        assert meter.begin("t2", ["0"]) == ["gpu:SIM-0"]  # Ray gives ids as strings too
        time.sleep(0.6)
        meter.end("t1", {"finished": True})
        meter.end("t2", {"finished": True})
        first, second = meter.final("t1"), meter.final("t2")
        assert first is not None and second is not None
        joules = first["gpu_energy_j"] + second["gpu_energy_j"]
        assert first["gpu_energy_j"] == pytest.approx(second["gpu_energy_j"], rel=0.2)
        assert joules + sum(meter.idle_joules().values()) == pytest.approx(sum(meter.counter_deltas().values()), abs=1e-3)
        assert first["devices"] == [{"key": "gpu:SIM-0", "index": 0, "model": "Simulated GPU", "node": "node-a"}]
        assert first["worker"] == {"finished": True} and "closed-at-experiment-end" not in first["flags"]
    finally:
        meter.stop()


def test_a_trial_whose_worker_never_ends_it_is_closed_when_its_figures_are_asked_for() -> None:
    meter = node(300.0)
    try:
        meter.begin("killed", [0])
        time.sleep(0.3)
        started = time.monotonic()
        final = meter.final("killed", grace_s=0.2)
        assert time.monotonic() - started >= 0.2
        assert final is not None and final["worker"] == {}
        assert "closed-at-experiment-end" in final["flags"]
        assert final["gpu_energy_j"] > 0 and final["gpu_seconds"] > 0.2
        assert meter.final("killed", grace_s=0) is None  # handed over once
    finally:
        meter.stop()


def test_gpus_the_node_does_not_have_are_not_metered() -> None:
    meter = node(300.0)
    try:
        assert meter.begin("t", [3]) == []
        assert meter.snapshot("t")["gpu_seconds"] == 0
        assert meter.snapshot("unknown") == {"gpu_energy_j": 0.0, "gpu_seconds": 0.0,
                                             "workers": {"gpu": 0.0, "cpu": 0.0, "memory": 0.0, "gpu_seconds": 0.0}}
    finally:
        meter.stop()


def test_a_trial_process_meter_measures_its_cpu_and_memory() -> None:
    trial = TrialProcessMeter()
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        sum(range(10_000))
    so_far = trial.energy_so_far()
    final = trial.finish()
    assert so_far["cpu"] > 0 and so_far["memory"] > 0
    assert final["cpu"]["joules"] >= so_far["cpu"] and final["cpu"]["method"] == "estimate-tdp"
    assert final["memory"]["method"] == "estimate"


class TwoNodes(NodeMeter):
    """A node meter that asks another in-process node meter for a trial's workers there (the
    Ray plugin asks the other nodes' actors)."""

    peer: NodeMeter

    def remote_parts(self, trial_id: str, nodes: list[str], grace_s: float) -> list[dict] | None:
        return self.peer.final_parts(trial_id, grace_s) if nodes == [self.peer.node_id] else None


def test_a_trials_workers_here_and_on_another_node_are_added_to_it_once() -> None:
    home = TwoNodes("node-a", [SimulatedGpuSource([PowerProfile.constant(100.0), PowerProfile.constant(200.0)])])
    away = NodeMeter("node-b", [SimulatedGpuSource([PowerProfile.constant(300.0)])])
    home.peer = away
    try:
        home.begin("t", [])  # the trial's own process holds no GPU
        home.begin("t/w0", [1], part_of="t")
        away.begin("t/w1", [0], part_of="t")
        home.note_part("t", "node-b")
        home.report_progress("t", "t/w1", {"gpu": 5.0, "cpu": 1.0, "memory": 0.5, "gpu_seconds": 0.1})
        assert home.snapshot("t")["workers"] == {"gpu": 5.0, "cpu": 1.0, "memory": 0.5, "gpu_seconds": 0.1}
        time.sleep(0.5)
        cpu = {"cpu": {"joules": 2.0, "method": "estimate-tdp"}, "memory": {"joules": 1.0, "method": "estimate"}}
        home.end("t/w0", {**cpu, "finished": True, "pid": 11})
        away.end("t/w1", {**cpu, "finished": True, "pid": 12})
        home.end("t", {"cpu": {"joules": 0.5, "method": "estimate-tdp"}, "finished": True})
        final = home.final("t")
        assert final is not None
        assert sorted((d["node"], d["index"]) for d in final["devices"]) == [("node-a", 1), ("node-b", 0)]
        assert final["worker"]["cpu"]["joules"] == pytest.approx(4.5) and final["worker"]["memory"]["joules"] == 2.0
        assert final["worker"]["finished"] is True and "ray-train-workers: 2" in final["flags"]
        watts = final["gpu_energy_j"] / final["gpu_seconds"]
        assert 200.0 < watts < 300.0  # the 200 W and the 300 W GPU, each for the same time
        assert home.final("t") is None and away.final_parts("t") == []  # once
    finally:
        home.stop()
        away.stop()


def test_the_sessions_processes_outside_trials_are_its_overhead() -> None:
    """A child process busy outside a trial is the session's; busy inside a trial's window, the
    trial's (the trial's own meter charges it)."""
    import os
    import subprocess
    import sys

    from auditor.meters.session import SessionProcesses

    burn = "import time\nt=time.process_time()\nwhile time.process_time()-t<0.8: pass\ninput()"
    session = SessionProcesses([os.getpid()], refresh_s=0.0)
    before = session.cpu_seconds()
    outside = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE)
    inside = subprocess.Popen([sys.executable, "-c", "import time\ntime.sleep(0.3)\n" + burn], stdin=subprocess.PIPE)
    session.cpu_seconds()
    session.begin_trial(inside.pid)
    time.sleep(2.0)
    during = session.cpu_seconds() - before
    session.end_trial(inside.pid)
    for child in (outside, inside):
        child.communicate(b"\n")
    after = session.cpu_seconds() - before  # both exited: kept as last read
    assert 0.8 <= during < 0.8 + 0.7  # the outside child (and its start-up), not the one in a trial
    assert after == pytest.approx(during, abs=0.3)
