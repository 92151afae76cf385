"""The meter with its sampler thread, on simulated GPUs and this machine's CPU."""

from __future__ import annotations

import os
import threading
import time

import pytest

from auditor.meters.base import Device, EnergySource
from auditor.meters.cpu import CpuTimeSource, MemoryEstimateSource
from auditor.meters.nvml import NvmlCounterSource
from auditor.meters.sampler import Meter
from auditor.meters.simulated import PowerProfile, SimulatedGpuSource
from tests.meters_tests.fake_nvml import FakeGpu, FakeNvml, ManualClock


def gpu(watts: float = 300.0, **kwargs: object) -> SimulatedGpuSource:
    return SimulatedGpuSource([PowerProfile.constant(watts)], **kwargs)  # type: ignore[arg-type]


def test_interval_energy_matches_the_profile() -> None:
    with Meter([gpu(300.0)]) as meter:
        interval = meter.begin(gpus="all")
        time.sleep(0.6)
        meter.end(interval)
        measurement = meter.measure(interval)
    assert measurement.energy["gpu"].method == "counter"
    assert measurement.energy["gpu"].joules == pytest.approx(300.0 * measurement.duration_s, rel=0.1)
    assert measurement.gpu_seconds == pytest.approx(measurement.duration_s)
    assert measurement.flags == []


def test_burst_shorter_than_the_counter_step_is_never_zero() -> None:
    with Meter([gpu(700.0)]) as meter:
        time.sleep(0.15)
        interval = meter.begin(gpus="all")
        time.sleep(0.03)
        meter.end(interval)
        measurement = meter.measure(interval)
    assert measurement.energy["gpu"].joules > 0
    assert measurement.energy["gpu"].joules == pytest.approx(700.0 * measurement.duration_s, rel=0.5)
    assert "below-sensor-resolution" in measurement.flags


def test_threads_overlapping_on_one_gpu_count_nothing_twice() -> None:
    meter = Meter([gpu(250.0)]).start()
    measurements = []

    def trial(seconds: float) -> None:
        interval = meter.begin(gpus="all")
        time.sleep(seconds)
        meter.end(interval)
        measurements.append(meter.measure(interval))

    threads = [threading.Thread(target=trial, args=(s,)) for s in (0.3, 0.5, 0.2, 0.4)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    meter.stop()
    key = "gpu:SIM-0"
    attributed = sum(m.per_device[key] for m in measurements)
    assert attributed + meter.idle_joules()[key] == pytest.approx(meter.counter_deltas()[key], abs=1e-3)
    assert all(m.per_device[key] > 0 for m in measurements)


def test_gpu_seconds_count_every_device_held() -> None:
    with Meter([SimulatedGpuSource([PowerProfile.constant(100.0)] * 2)]) as meter:
        interval = meter.begin(gpus="all")
        time.sleep(0.2)
        meter.end(interval)
        measurement = meter.measure(interval)
    assert len(measurement.gpus) == 2
    assert measurement.gpu_seconds == pytest.approx(2 * measurement.duration_s)


def test_gpus_by_index_and_uuid_and_unknown() -> None:
    meter = Meter([SimulatedGpuSource([PowerProfile.constant(100.0)] * 2)])
    assert meter.resolve_gpus([1]) == (["gpu:SIM-1"], False)
    assert meter.resolve_gpus("SIM-0") == (["gpu:SIM-0"], False)
    with pytest.raises(ValueError, match="no GPU 5 among those metered here"):
        meter.resolve_gpus([5])


def test_auto_gpus_are_those_this_process_holds() -> None:
    with Meter([gpu(100.0, held_by=os.getpid())]) as meter:
        held = meter.begin(gpus="auto")
        time.sleep(0.1)
        meter.end(held)
        assert [d.key for d in meter.measure(held).gpus] == ["gpu:SIM-0"]
    with Meter([gpu(100.0, held_by=None)]) as meter:
        untouched = meter.begin()
        meter.end(untouched)
        measurement = meter.measure(untouched)
        assert measurement.gpus == [] and measurement.gpu_seconds == 0


def test_gpu_lost_mid_run_goes_on_estimated_with_a_warning() -> None:
    warnings: list[str] = []
    with Meter([gpu(300.0, fail_after_s=0.3, tdp_watts=700.0)], warn=warnings.append) as meter:
        interval = meter.begin(gpus="all")
        time.sleep(0.7)
        meter.end(interval)
        measurement = meter.measure(interval)
    assert len(warnings) == 1 and "stopped answering" in warnings[0] and "700 W" in warnings[0]
    assert measurement.energy["gpu"].method == "estimate-tdp"
    assert "device-lost" in measurement.flags
    assert measurement.energy["gpu"].joules > 300.0 * 0.3  # the estimate carries on after the loss


def test_nvml_error_mid_run_through_the_fake_library() -> None:
    clock = ManualClock()
    nvml = FakeNvml([FakeGpu("GPU-x", "NVIDIA H100 80GB HBM3", PowerProfile.constant(400.0), lost_after_s=1.0)], clock)
    warnings: list[str] = []
    meter = Meter([NvmlCounterSource(nvml)], clock=clock, warn=warnings.append)
    meter.flush()
    interval = meter.begin(gpus="all")
    for _ in range(8):
        clock.advance(0.025)
        meter.flush(max_reads=1)
    clock.advance(2.0)
    meter.flush(max_reads=1)  # the GPU is lost now
    meter.end(interval)
    clock.advance(0.1)
    measurement = meter.measure(interval)
    assert "GPU is lost" in warnings[0]
    assert "device-lost" in measurement.flags
    assert measurement.energy["gpu"].method == "estimate-tdp"


def test_cpu_only_machine_measures_on_the_estimates() -> None:
    with Meter([CpuTimeSource(), MemoryEstimateSource()]) as meter:
        interval = meter.begin()
        deadline = time.process_time() + 0.2
        while time.process_time() < deadline:
            pass
        meter.end(interval)
        measurement = meter.measure(interval)
    assert measurement.energy["cpu"].method == "estimate-tdp" and measurement.energy["cpu"].joules > 0
    assert measurement.energy["memory"].method == "estimate"
    assert measurement.gpus == []


def test_timeline_memory_is_bounded() -> None:
    clock = ManualClock()
    source = SimulatedGpuSource([PowerProfile.constant(100.0)], update_period_s=0.0, clock=clock)
    meter = Meter([source], clock=clock, timeline_capacity=100)
    for _ in range(1000):
        clock.advance(0.05)
        meter.flush(max_reads=1)
    line = meter.timeline.devices["gpu:SIM-0"]
    assert len(line) == 100
    assert line.nbytes == 1600
    assert line.energy_between(clock.now - 1.0, clock.now) == pytest.approx(100.0)


def test_measuring_an_open_interval_is_an_error() -> None:
    meter = Meter([gpu()])
    with pytest.raises(ValueError, match="end the interval"):
        meter.measure(meter.begin(gpus="all"))


def test_a_gpu_this_machine_does_not_have_leaves_the_cpu_and_memory_metered() -> None:
    """devices="gpu0" without that GPU: one warning, and the CPU's energy is still there."""
    messages: list[str] = []
    with Meter([CpuTimeSource(), MemoryEstimateSource()], warn=messages.append) as meter:
        intervals = []
        for _ in range(2):
            interval = meter.begin(gpus="gpu0")
            deadline = time.process_time() + 0.1
            while time.process_time() < deadline:
                pass
            meter.end(interval)
            intervals.append(meter.measure(interval))
    assert len(messages) == 1 and "no GPU 'gpu0'" in messages[0]
    for measurement in intervals:
        assert measurement.energy["cpu"].joules > 0 and measurement.energy["memory"].joules > 0
        assert "gpu-not-found" in measurement.flags and measurement.gpu_seconds == 0


class _SlowSensor(EnergySource):
    """A sensor whose every read takes a second (an IPMI or BMC that hangs): the sampler thread,
    which reads sources one after another, falls a second behind on every other source."""

    poll_interval_s = 0.05

    def devices(self) -> list[Device]:
        return [Device("cpu:slow", "cpu", "slow sensor", "estimate-cpu-time")]

    def read(self) -> dict[str, float]:
        time.sleep(1.0)
        return {"cpu:slow": 0.0}


def test_a_running_figure_is_current_when_the_sampler_thread_is_late() -> None:
    with Meter([_SlowSensor(), gpu(300.0)]) as meter:
        interval = meter.begin(gpus="all")
        began = time.monotonic()
        time.sleep(1.6)  # the thread read the GPU at about 1 s, and is in the sensor's next read
        seen = meter.snapshot(interval).energy["gpu"].joules
        elapsed = time.monotonic() - began
        meter.end(interval)
    period = 0.1 + 0.05  # the simulated counter's step and its poll
    assert seen >= 300.0 * (elapsed - period) - 1.0  # not 0.6 s (180 J) behind
    assert seen <= 300.0 * elapsed + 1.0


def test_a_new_idle_owner_never_takes_the_idle_of_one_gone_before_it() -> None:
    """Owners held by id: an owner released and garbage collected must not hand its idle to the
    next one made (CPython gives a new object the freed one's id; a Ray experiment's overhead
    row once carried the previous experiment's)."""
    import gc

    with Meter([SimulatedGpuSource([PowerProfile.constant(300.0)])]) as meter:
        meter.read_now()
        last_read = time.monotonic()  # what was drawn before is read, and no owner's
        for _ in range(8):
            owner = object()
            meter.own_idle(owner)
            time.sleep(0.25)
            meter.read_now()
            taken, now = sum(meter.idle_of(owner).values()), time.monotonic()
            # at most what was drawn since the last reading (with a sample's slack on a loaded machine);
            # the owners gone before it would add 300 W x 0.25 s each: past the bound by the fourth
            assert taken <= 300.0 * (now - last_read + 0.5), (taken, now - last_read)
            last_read = now
            meter.release_idle(owner)
            del owner
            gc.collect()
