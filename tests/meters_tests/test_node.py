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
        assert meter.snapshot("unknown") == {"gpu_energy_j": 0.0, "gpu_seconds": 0.0}
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
