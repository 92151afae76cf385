"""The distribution, installed as the README says: a wheel built from the clone installs, with
an extra, into a fresh venv; ``auditor`` and ``auditor.integrations.optuna`` import from there
and ``audit --help`` runs."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_plugins_ship_inside_the_package() -> None:
    """The project card's layout: the core in auditor/, the plugins in integrations/, imported
    from the editable install as auditor.integrations."""
    import auditor.integrations
    import auditor.integrations.optuna

    import auditor

    assert Path(auditor.__file__).resolve() == ROOT / "auditor" / "__init__.py"
    assert Path(auditor.integrations.__file__).resolve() == ROOT / "integrations" / "__init__.py"
    assert Path(auditor.integrations.optuna.__file__).resolve() == ROOT / "integrations" / "optuna.py"
    assert not (ROOT / "src").exists()


def test_the_readme_says_how_to_install_from_a_clone_or_a_wheel() -> None:
    """The commands this module runs are the ones the README gives (the package is not on PyPI)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    for command in ("pip install /path/to/auditor", "pip install '/path/to/auditor[optuna]'", "python -m build",
                    "pip wheel . --no-deps -w dist", "pip install dist/hpo_auditor-*.whl",
                    f"pip install 'dist/hpo_auditor-{version}-py3-none-any.whl[optuna]'"):
        assert command in readme, command


@pytest.mark.slow
def test_a_built_wheel_installs_with_an_extra_in_a_fresh_venv_and_runs(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    build = subprocess.run(  # what the README's `pip wheel . --no-deps -w dist` does, without fetching setuptools
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-v", "-w", str(dist)],
        check=True, capture_output=True, text=True, cwd=tmp_path,
    )
    backend = [line.strip() for line in (build.stdout + build.stderr).splitlines()
               if "warning" in line.lower() and "Location 'file:" not in line  # (pip's index settings on this machine)
               and "byte-compiling is disabled" not in line]  # (PYTHONDONTWRITEBYTECODE where it is set)
    assert not backend, backend  # the card's layout (auditor/ and integrations/) builds without a setuptools warning
    [wheel] = dist.glob("hpo_auditor-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "auditor/integrations/__init__.py" in names and "auditor/integrations/optuna.py" in names
    assert not any(name.startswith(("integrations/", "tests/", "scripts/")) for name in names)
    assert {"auditor/data/grid_intensity.csv", "auditor/data/cloud_regions.csv", "auditor/data/hardware.csv"} <= set(names)

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # Offline and quick: the dependencies come from this venv's site-packages, appended to the
    # new venv's path as a plain entry (so this venv's editable install of auditor is not seen).
    Path(site, "deps-from-test-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    install = subprocess.run([python, "-m", "pip", "install", "--no-index", f"{wheel}[optuna]"],
                             capture_output=True, text=True, cwd=tmp_path)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    assert "Successfully installed hpo-auditor-0.1.0" in install.stdout
    probe = (
        "import auditor, auditor.integrations.optuna as plugin, optuna\n"
        "from importlib.metadata import requires\n"
        "from auditor.data import read_table\n"
        "print(auditor.__file__)\n"
        "print(plugin.__file__)\n"
        "print(len(read_table('hardware.csv')))\n"
        "print(any('optuna' in r and 'extra == \"optuna\"' in r for r in requires('hpo-auditor')))\n"
        "print(plugin.AuditCallback.__name__)\n"
    )
    out = subprocess.run([python, "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path).stdout.split()
    assert Path(out[0]).is_relative_to(env_dir) and out[0].endswith("auditor/__init__.py")
    assert Path(out[1]).is_relative_to(env_dir) and out[1].endswith("auditor/integrations/optuna.py")
    assert int(out[2]) > 40
    assert out[3:] == ["True", "AuditCallback"]

    help_run = subprocess.run([env_dir / "bin" / "audit", "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert help_run.returncode == 0, help_run.stderr[-2000:]
    assert all(command in help_run.stdout for command in ("report", "sweeps", "trials", "doctor"))
