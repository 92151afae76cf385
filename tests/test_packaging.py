"""The distribution: a built wheel installs into a fresh venv with `auditor.integrations` inside."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_editable_install_maps_integrations_into_the_package() -> None:
    import auditor.integrations

    assert Path(auditor.integrations.__file__).resolve() == ROOT / "integrations" / "__init__.py"


@pytest.mark.slow
def test_wheel_installs_in_a_fresh_venv_and_imports_auditor_integrations(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(dist)],
        check=True,
        cwd=tmp_path,
    )
    [wheel] = dist.glob("hpo_auditor-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "auditor/integrations/__init__.py" in names
    assert not any(name.startswith("integrations/") for name in names)
    assert {"auditor/data/grid_intensity.csv", "auditor/data/cloud_regions.csv", "auditor/data/hardware.csv"} <= set(names)

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True, cwd=tmp_path)
    probe = (
        "import auditor, auditor.integrations\n"
        "from auditor.data import read_table\n"
        "print(auditor.integrations.__file__)\n"
        "print(len(read_table('hardware.csv')))\n"
    )
    out = subprocess.run([python, "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path).stdout.split()
    assert Path(out[0]).is_relative_to(env_dir)
    assert out[0].endswith("auditor/integrations/__init__.py")
    assert int(out[1]) > 40
    assert (env_dir / "bin" / "audit").exists()
