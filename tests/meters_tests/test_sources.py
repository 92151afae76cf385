"""Each energy source through the simulated hardware boundary (fake NVML, fake sysfs)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from auditor.meters.cpu import CpuInfo, CpuTimeSource, MemoryEstimateSource, ProcessTree
from auditor.meters.nvml import NvmlCounterSource, NvmlPowerSource, nvml_sources
from auditor.meters.rapl import RaplSource
from auditor.meters.simulated import PowerProfile
from tests.meters_tests.fake_nvml import FakeGpu, FakeNvml, ManualClock


def two_gpus(clock: ManualClock, **kwargs: object) -> FakeNvml:
    return FakeNvml(
        [
            FakeGpu("GPU-aaaa", "NVIDIA H100 80GB HBM3", PowerProfile.constant(300.0)),
            FakeGpu("GPU-bbbb", "Tesla V100-SXM2-16GB", PowerProfile.of([(0, 100.0), (1.0, 200.0)]), **kwargs),
        ],
        clock,
    )


def test_counter_source_reads_joules_in_100ms_steps() -> None:
    clock = ManualClock()
    source = NvmlCounterSource(two_gpus(clock))
    assert [d.key for d in source.devices()] == ["gpu:GPU-aaaa", "gpu:GPU-bbbb"]
    assert source.devices()[1].fallback_watts == 300  # V100 SXM2 from the hardware table
    clock.advance(1.55)
    assert source.read() == {"gpu:GPU-aaaa": pytest.approx(450.0), "gpu:GPU-bbbb": pytest.approx(100 + 200 * 0.5)}
    assert source.discrete and source.poll_interval_s == pytest.approx(0.05)


@pytest.mark.parametrize(("visible", "expected"), [("1", ["gpu:GPU-bbbb"]), ("GPU-b,GPU-a", ["gpu:GPU-bbbb", "gpu:GPU-aaaa"]), ("", [])])
def test_sources_respect_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch, visible: str, expected: list[str]) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    sources, reason = nvml_sources(two_gpus(ManualClock()))
    assert reason is None
    assert [d.key for s in sources for d in s.devices()] == expected


def test_gpus_without_counter_get_power_sampling_flagged() -> None:
    clock = ManualClock()
    sources, _ = nvml_sources(two_gpus(clock, has_counter=False))
    by_method = {d.key: d.method for s in sources for d in s.devices()}
    assert by_method == {"gpu:GPU-aaaa": "counter", "gpu:GPU-bbbb": "sampled-power"}
    power = next(s for s in sources if isinstance(s, NvmlPowerSource))
    power._clock = clock
    power.read()
    for _ in range(20):
        clock.advance(0.1)
        joules = power.read()["gpu:GPU-bbbb"]
    assert joules == pytest.approx(100 * 1.0 + 200 * 1.0, rel=0.06)  # trapezoid over the step


def test_lost_gpu_is_left_out_with_its_reason() -> None:
    clock = ManualClock()
    source = NvmlCounterSource(two_gpus(clock, lost_after_s=1.0))
    clock.advance(0.5)
    assert set(source.read()) == {"gpu:GPU-aaaa", "gpu:GPU-bbbb"}
    clock.advance(1.0)
    assert set(source.read()) == {"gpu:GPU-aaaa"}
    assert "GPU is lost" in source.lost()["gpu:GPU-bbbb"]


def test_holders_lists_pids_with_a_cuda_context() -> None:
    nvml = two_gpus(ManualClock())
    nvml.gpus[0].holders = {4242}
    assert NvmlCounterSource(nvml).holders() == {"gpu:GPU-aaaa": {4242}, "gpu:GPU-bbbb": set()}


def fake_rapl(root: Path, package_uj: int, dram_uj: int | None = None, max_uj: int = 1000_000) -> Path:
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "name").write_text("package-0\n")
    (zone / "energy_uj").write_text(f"{package_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    if dram_uj is not None:
        dram = root / "intel-rapl:0:0"  # sysfs lists sub-zones beside their package
        dram.mkdir(exist_ok=True)
        (dram / "name").write_text("dram\n")
        (dram / "energy_uj").write_text(f"{dram_uj}\n")
        (dram / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return root


def test_rapl_package_and_dram_with_wrap_around(tmp_path: Path) -> None:
    root = fake_rapl(tmp_path, package_uj=900_000, dram_uj=100)
    source = RaplSource(root)
    assert {(d.key, d.domain, d.method) for d in source.devices()} == {
        ("cpu:package-0", "cpu", "rapl"),
        ("memory:dram-0", "memory", "rapl"),
    }
    assert source.read() == {"cpu:package-0": 0.0, "memory:dram-0": 0.0}
    fake_rapl(root, package_uj=950_000, dram_uj=2_100)
    assert source.read() == {"cpu:package-0": pytest.approx(0.05), "memory:dram-0": pytest.approx(0.002)}
    fake_rapl(root, package_uj=50_000, dram_uj=3_100)  # wrapped at 1,000,000 uJ
    assert source.read()["cpu:package-0"] == pytest.approx(0.05 + 0.1)


def test_rapl_counter_that_becomes_unreadable_is_lost(tmp_path: Path) -> None:
    root = fake_rapl(tmp_path, package_uj=10)
    source = RaplSource(root)
    source.read()
    counter = root / "intel-rapl:0" / "energy_uj"
    counter.unlink()
    counter.mkdir()
    assert source.read() == {}
    assert "cannot read" in source.lost()["cpu:package-0"]


BURNER = """
import sys, time
print("ready", flush=True)
sys.stdin.readline()
started = time.process_time()
while time.process_time() < started + 0.3:
    pass
print(time.process_time() - started, flush=True)
sys.stdin.readline()
"""


def test_cpu_time_estimate_follows_cpu_seconds() -> None:
    """A process of its own burns 0.3 s of CPU (this test process's other threads and children,
    which the tree of this process would count too, stay out of it)."""
    cpu = CpuInfo(model="Test CPU", logical_cpus_per_socket=10, tdp=None)
    child = subprocess.Popen([sys.executable, "-c", BURNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        source = CpuTimeSource(ProcessTree(child.pid), cpu)
        assert child.stdout.readline().strip() == "ready"  # its start-up is over before the first reading
        before = source.read()["cpu:process"]
        child.stdin.write("go\n")
        child.stdin.flush()
        burned = float(child.stdout.readline())
        after = source.read()["cpu:process"]
    finally:
        child.communicate("done\n", timeout=10)
    assert after - before == pytest.approx(burned * cpu.watts_per_logical_cpu, rel=0.2)
    assert source.devices()[0].method == "estimate-tdp"


def test_process_tree_counts_children_and_keeps_finished_ones() -> None:
    tree = ProcessTree()
    own_before = tree.cpu_seconds()
    child = subprocess.Popen([sys.executable, "-c", "import time\nt=time.process_time()+0.5\nwhile time.process_time()<t: pass\ntime.sleep(2)"])
    try:
        deadline = time.monotonic() + 10
        while tree.cpu_seconds() - own_before < 0.4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.pid in tree.pids()
        seen = tree.cpu_seconds()
        assert seen - own_before >= 0.4
    finally:
        child.kill()
        child.wait()
    assert tree.cpu_seconds() >= seen  # a finished child's time is kept
    assert os.getpid() in tree.pids() and child.pid not in tree.pids()


def test_memory_estimate_integrates_resident_memory() -> None:
    clock = ManualClock()
    tree = ProcessTree()
    source = MemoryEstimateSource(tree, clock=clock)
    source.read()
    clock.advance(10.0)
    joules = source.read()["memory:process"]
    expected = tree.rss_bytes() / 1e9 * 0.375 * 10
    assert joules == pytest.approx(expected, rel=0.2)
