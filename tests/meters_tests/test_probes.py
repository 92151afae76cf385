"""Probes of the hardware meters; RAPL is simulated at the sysfs boundary it reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from auditor.meters.cpu import DEFAULT_WATTS_PER_LOGICAL_CPU, probe_cpu
from auditor.meters.nvml import probe_nvml, visible_indices
from auditor.meters.rapl import probe_rapl


def fake_powercap(root: Path, zones: dict[str, tuple[str, str | None]]) -> Path:
    """Lay out powercap zones: name -> (domain name, energy_uj content or None for unreadable)."""
    for zone, (name, energy) in zones.items():
        directory = root / zone
        directory.mkdir(parents=True)
        (directory / "name").write_text(name + "\n")
        if energy is None:
            (directory / "energy_uj").mkdir()  # reading it fails, as an unreadable counter does
        else:
            (directory / "energy_uj").write_text(energy + "\n")
    return root


def test_rapl_readable_zones(tmp_path: Path) -> None:
    root = fake_powercap(tmp_path, {"intel-rapl:0": ("package-0", "123456"), "intel-rapl:0:0": ("dram", "42")})
    status = probe_rapl(root)
    assert status.available
    assert [(d.name, d.readable) for d in status.domains] == [("package-0", True), ("dram", True)]


def test_rapl_unreadable_counter_says_why(tmp_path: Path) -> None:
    status = probe_rapl(fake_powercap(tmp_path, {"intel-rapl:0": ("package-0", None)}))
    assert not status.available
    assert "cannot be read" in status.reason
    assert "estimated" in status.hint


def test_rapl_root_only_counter_suggests_chmod(tmp_path: Path) -> None:
    """A counter only root may read. Root itself reads any file, so as root the probe runs in a
    child without the capabilities that bypass file permissions (util-linux `setpriv`)."""
    root = fake_powercap(tmp_path, {"intel-rapl:0": ("package-0", "1")})
    (root / "intel-rapl:0" / "energy_uj").chmod(0o000)
    probe = (
        "import sys; from pathlib import Path; from auditor.meters.rapl import probe_rapl\n"
        "s = probe_rapl(Path(sys.argv[1])); print(s.reason); print(s.hint)"
    )
    command = [sys.executable, "-c", probe, str(root)]
    if os.geteuid() == 0:
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    reason, hint = out.stdout.splitlines()
    assert reason.endswith("energy_uj is root-only")
    assert "sudo chmod a+r" in hint


def test_rapl_absent(tmp_path: Path) -> None:
    status = probe_rapl(tmp_path / "nothing")
    assert not status.available and status.reason.startswith("no RAPL zones")


def test_cpu_with_known_and_unknown_model() -> None:
    known = probe_cpu("model name\t: AMD EPYC 7763 64-Core Processor\nsiblings\t: 128\n")
    assert known.tdp is not None and known.tdp.tdp_watts == 280
    assert known.watts_per_logical_cpu == pytest.approx(280 / 128)
    unknown = probe_cpu("model name\t: Imaginary CPU 9000\n")
    assert unknown.tdp is None and unknown.watts_per_logical_cpu == DEFAULT_WATTS_PER_LOGICAL_CPU


def test_cpu_of_this_machine_has_a_model() -> None:
    assert probe_cpu().model


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (None, [0, 1, 2]),
        ("", []),
        ("2,0", [2, 0]),
        ("GPU-bbb", [1]),
        ("0,7,1", [0]),  # CUDA stops at the first entry it cannot resolve
        ("GPU-", []),  # ambiguous prefix
        ("1,1", [1]),
    ],
)
def test_visible_indices_follow_cuda_rules(env: str | None, expected: list[int]) -> None:
    assert visible_indices(env, ["GPU-aaa", "GPU-bbb", "GPU-ccc"]) == expected


def test_nvml_probe_answers_with_or_without_a_gpu() -> None:
    status = probe_nvml()
    if status.available:
        assert all(g.uuid and g.name for g in status.gpus)
    else:
        assert status.reason and status.hint
