"""Finding the right GPUs where users run, and reading them cheaply (issue 13, part 1).

Only the hardware is simulated: the fake NVML plays MIG instances, costly calls and foreign
PIDs; the CUDA driver is "loaded" by mapping a file named like it, read back through /proc.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditor.meters.cadence import CPU_SHARE, cadences
from auditor.meters.cuda import ASSUMED_FLAG, CudaUse, cuda_use, driver_loaded
from auditor.meters.mig import MIG_FLAG
from auditor.meters.nvml import NvmlCounterSource, counter_call, nvml_sources, visible_gpus
from auditor.meters.sampler import Meter
from auditor.meters.simulated import PowerProfile
from tests.meters_tests.fake_nvml import FakeGpu, FakeMig, FakeNvml, ManualClock

H100 = "NVIDIA H100 80GB HBM3"


def mig_machine(clock: ManualClock) -> FakeNvml:
    return FakeNvml(
        [
            FakeGpu("GPU-aaaa", "NVIDIA A100-SXM4-80GB", PowerProfile.constant(350.0),
                    migs=[FakeMig("MIG-1111", slices=3), FakeMig("MIG-2222", slices=4)]),
            FakeGpu("GPU-bbbb", "NVIDIA A100-SXM4-80GB", PowerProfile.constant(100.0)),
        ],
        clock,
    )


# -- MIG -------------------------------------------------------------------------------------


def test_mig_instance_gets_its_slices_share_of_the_parent_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock()
    nvml = mig_machine(clock)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-1111")
    sources, reason = nvml_sources(nvml)
    assert reason is None and len(sources) == 1  # the instance's own counter is "Not Supported"
    (device,) = sources[0].devices()
    assert device.key == "gpu:MIG-1111" and device.flags == (MIG_FLAG,) and device.method == "counter"
    meter = Meter(sources, clock=clock)
    meter.flush()
    interval = meter.begin(gpus="all")
    clock.advance(2.0)
    meter.end(interval)
    clock.advance(0.1)
    measurement = meter.measure(interval)
    assert measurement.energy["gpu"].joules == pytest.approx(350.0 * 2.0 * 3 / 7, rel=0.06)
    assert MIG_FLAG in measurement.flags
    assert measurement.gpu_seconds == pytest.approx(2.0)


def test_two_instances_of_one_gpu_read_its_counter_once_and_split_it(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock()
    nvml = mig_machine(clock)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-2222,MIG-1111")
    (source,) = nvml_sources(nvml)[0]
    assert [d.key for d in source.devices()] == ["gpu:MIG-2222", "gpu:MIG-1111"]  # CUDA's order
    before = nvml.counter_reads.get(0, 0)
    clock.advance(1.0)
    values = source.read()
    assert nvml.counter_reads[0] == before + 1
    assert values["gpu:MIG-2222"] + values["gpu:MIG-1111"] == pytest.approx(350.0)  # 7 of 7 slices
    assert values["gpu:MIG-2222"] == pytest.approx(350.0 * 4 / 7)


def test_unknown_mig_uuid_stops_the_list_as_cuda_does() -> None:
    nvml = mig_machine(ManualClock())
    assert [g.uuid for g in visible_gpus(nvml, "1,MIG-9999,0")] == ["GPU-bbbb"]
    assert [g.uuid for g in visible_gpus(nvml, None)] == ["GPU-aaaa", "GPU-bbbb"]


# -- the counter's cheaper call, and a cadence that keeps reads cheap ---------------------------


def test_counter_is_read_through_the_cheaper_call() -> None:
    clock = ManualClock()
    gpus = [FakeGpu("GPU-aaaa", H100, PowerProfile.constant(500.0))]
    cheap_field = FakeNvml(gpus, clock, counter_cost_s=0.004, field_cost_s=0.00002)
    assert counter_call(cheap_field, 0).name.startswith("nvmlDeviceGetFieldValues")
    no_field = FakeNvml(gpus, clock, counter_cost_s=0.004, field_cost_s=None)
    assert counter_call(no_field, 0).name == "nvmlDeviceGetTotalEnergyConsumption"
    clock.advance(1.0)
    source = NvmlCounterSource(cheap_field)
    assert source.read() == {"gpu:GPU-aaaa": pytest.approx(500.0)}  # same counter, same joules


@pytest.mark.parametrize(
    ("costs", "bases"),
    [([0.032, 0.0001], [0.05, 0.1]), ([0.0001, 0.0002], [0.05, 0.1]), ([0.01, 0.02, 0.0], [0.05, 0.05, 0.1])],
)
def test_cadences_keep_reads_within_the_share(costs: list[float], bases: list[float]) -> None:
    intervals = cadences(costs, bases)
    assert all(t >= b for t, b in zip(intervals, bases, strict=True))
    assert sum(c / t for c, t in zip(costs, intervals, strict=True)) <= CPU_SHARE + 1e-12
    cheap = [t == b for t, b, c in zip(intervals, bases, costs, strict=True) if c / b <= CPU_SHARE / len(costs)]
    assert all(cheap)  # sources that cost little keep their own cadence


def test_eight_costly_gpus_are_read_under_one_percent_of_a_core() -> None:
    """Reads of 4 ms a GPU (as on the H100 VM), 8 GPUs: the sampler slows down to stay cheap,
    and trials plus idle still add up to the counters."""
    gpus = [FakeGpu(f"GPU-{i:04d}", H100, PowerProfile.constant(400.0)) for i in range(8)]
    nvml = FakeNvml(gpus, time.monotonic, counter_cost_s=0.004, field_cost_s=None)
    meter = Meter(nvml_sources(nvml)[0]).start()
    started, spent = time.monotonic(), nvml.spent_s  # after the first read and the call timing
    interval = meter.begin(gpus="all")
    time.sleep(6.0)
    elapsed, burnt = time.monotonic() - started, nvml.spent_s - spent
    meter.end(interval)
    asked = time.monotonic()
    measurement = meter.measure(interval, timeout=30.0)
    waited = time.monotonic() - asked
    meter.stop()
    assert burnt / elapsed <= CPU_SHARE * 1.15  # the first reads' costs are still being learnt
    assert waited < 1.0  # a trial's end reads at once rather than wait seconds for the slowed cadence
    (source,) = meter.sources
    assert meter.poll_interval(source) > 2.0
    idle = sum(meter.idle_joules().values())
    assert measurement.energy["gpu"].joules + idle == pytest.approx(sum(meter.counter_deltas().values()), rel=1e-9)
    assert measurement.energy["gpu"].joules > 0


# -- containers: NVML sees another PID namespace ---------------------------------------------


@pytest.fixture
def cuda_driver_mapped(tmp_path: Path) -> Iterator[None]:
    """This process with a file named like the CUDA driver mapped, as loading CUDA does."""
    library = tmp_path / "libcuda.so.1"
    library.write_bytes(b"\0" * mmap.PAGESIZE)
    with library.open("rb") as file, mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ) as mapped:
        assert driver_loaded(os.getpid())
        yield
        del mapped


def foreign_pid() -> int:
    """A PID no process here has (as a host PID seen from a container)."""
    pid = 4_000_000
    while os.path.exists(f"/proc/{pid}"):
        pid += 1
    return pid


def container_machine(clock: object) -> FakeNvml:
    return FakeNvml(
        [
            FakeGpu("GPU-aaaa", H100, PowerProfile.constant(400.0), holders={foreign_pid()}),
            FakeGpu("GPU-bbbb", H100, PowerProfile.constant(200.0), holders={foreign_pid() + 1}),
        ],
        clock,  # type: ignore[arg-type]
    )


def run_auto_trial(meter: Meter, seconds: float = 1.5) -> tuple[object, float]:
    with meter:
        interval = meter.begin()  # devices="auto"
        time.sleep(seconds)
        meter.end(interval)
        return meter.measure(interval), sum(meter.idle_joules().values())


def test_foreign_pids_and_the_driver_loaded_fall_back_to_the_visible_gpus(cuda_driver_mapped: None) -> None:
    warnings: list[str] = []
    meter = Meter(nvml_sources(container_machine(time.monotonic))[0], warn=warnings.append)
    measurement, _ = run_auto_trial(meter)
    assert [g.key for g in measurement.gpus] == ["gpu:GPU-aaaa", "gpu:GPU-bbbb"]  # type: ignore[attr-defined]
    assert ASSUMED_FLAG in measurement.flags  # type: ignore[attr-defined]
    assert measurement.energy["gpu"].joules == pytest.approx(600.0 * 1.5, rel=0.1)  # type: ignore[attr-defined]
    assert len(warnings) == 1 and "another PID namespace" in warnings[0] and ASSUMED_FLAG in warnings[0]


def test_foreign_pids_without_cuda_here_leave_the_gpus_alone() -> None:
    """A CPU-only search beside other containers' GPU jobs: their energy is not ours."""
    warnings: list[str] = []
    meter = Meter(nvml_sources(container_machine(time.monotonic))[0], warn=warnings.append)
    measurement, idle = run_auto_trial(meter, 0.5)
    assert measurement.gpus == [] and "gpu" not in measurement.energy  # type: ignore[attr-defined]
    assert idle > 0 and warnings == []


def test_torch_contexts_name_the_gpu_even_without_foreign_pids() -> None:
    """Where torch holds a context on CUDA device 1 and NVML lists nothing, device 1 is taken:
    torch's record is exact, so the other GPU stays out."""
    nvml = container_machine(time.monotonic)
    for gpu in nvml.gpus:
        gpu.holders = set()

    def torch_on_device_1(pids: set[int], look_for_driver: bool) -> CudaUse:
        return CudaUse(True, [1], ["bbbb"])

    warnings: list[str] = []
    meter = Meter(nvml_sources(nvml)[0], warn=warnings.append, cuda_probe=torch_on_device_1)
    measurement, _ = run_auto_trial(meter)
    assert [g.key for g in measurement.gpus] == ["gpu:GPU-bbbb"]  # type: ignore[attr-defined]
    assert measurement.energy["gpu"].joules == pytest.approx(200.0 * 1.5, rel=0.1)  # type: ignore[attr-defined]
    assert "torch holds a CUDA context" in warnings[0]


def test_gpus_nvml_lists_for_this_process_are_not_assumed(cuda_driver_mapped: None) -> None:
    nvml = container_machine(time.monotonic)
    nvml.gpus[1].holders = {os.getpid()}
    meter = Meter(nvml_sources(nvml)[0], warn=pytest.fail)
    measurement, _ = run_auto_trial(meter, 0.5)
    assert [g.key for g in measurement.gpus] == ["gpu:GPU-bbbb"]  # type: ignore[attr-defined]
    assert ASSUMED_FLAG not in measurement.flags  # type: ignore[attr-defined]


def test_this_process_shows_no_cuda_use_without_the_driver() -> None:
    assert cuda_use({os.getpid()}) == CudaUse(False)


def _namespaces_unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}; CI runs as root with unshare")
    pytest.skip(why)


def _child_of(pid: int, timeout_s: float = 10.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.01)
    raise TimeoutError(f"unshare ({pid}) started no process")


def test_auto_finds_the_gpu_from_inside_its_own_pid_namespace() -> None:
    """A real process in a PID namespace of its own (as in Docker without --pid=host): NVML
    lists its host PID, which does not exist in there; the trial still gets the GPU."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        _namespaces_unavailable("a PID namespace needs root and unshare")
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "tests.meters_tests.namespaced_trial"],
        cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    host_pid = _child_of(child.pid)
    out, err = child.communicate(f"{host_pid}\n", timeout=60)
    assert child.returncode == 0, err
    seen = json.loads(out.splitlines()[-1])
    assert seen["pid"] != host_pid and not seen["host_pid_exists_here"]  # the PIDs really differ
    assert seen["gpus"] == ["gpu:GPU-aaaa"] and ASSUMED_FLAG in seen["flags"]
    assert seen["gpu_joules"] == pytest.approx(400.0 * seen["duration_s"], rel=0.1)
    assert len(seen["warnings"]) == 1
