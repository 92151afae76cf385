"""Real faults for the reliability tests: a small disk that fills up, a read-only view of a
directory, a PostgreSQL server that restarts. They need root (mount, pg_ctlcluster): elsewhere
their tests skip with the reason; with CI=true they fail instead."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _needs(what: str, available: bool) -> None:
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what}; CI runs as root and must have it")
    pytest.skip(what)


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)


class SmallDisk:
    """A tmpfs of a few MiB; :meth:`fill` takes its free space, :meth:`free` gives it back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            while True:
                os.write(fd, b"\0" * 65536)
        except OSError:
            try:
                while True:
                    os.write(fd, b"\0")
            except OSError:
                pass  # not a byte left
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A real 16 MiB file system (tmpfs) that a test can fill up."""
    _needs("mounting a tmpfs needs root", os.geteuid() == 0 and shutil.which("mount") is not None)
    path = tmp_path / "disk"
    path.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(path))
    except subprocess.CalledProcessError as exc:
        _needs(f"cannot mount a tmpfs: {exc.stderr.decode().strip()}", False)
    yield SmallDisk(path)
    subprocess.run(["umount", "-l", str(path)], check=False, timeout=30)


class ReadOnlyView:
    """A second path onto a directory, mounted read-only (:meth:`make_writable` lifts that)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def make_writable(self) -> None:
        _mount("-o", "remount,bind,rw", str(self.path))


@pytest.fixture
def read_only_view(tmp_path: Path) -> Iterator[tuple[Path, ReadOnlyView]]:
    """A directory to prepare, and a read-only view of it (a bind mount)."""
    _needs("a read-only bind mount needs root", os.geteuid() == 0 and shutil.which("mount") is not None)
    source, view = tmp_path / "data", tmp_path / "read-only"
    source.mkdir()
    view.mkdir()
    try:
        _mount("--bind", str(source), str(view))
        _mount("-o", "remount,bind,ro", str(view))
    except subprocess.CalledProcessError as exc:
        _needs(f"cannot bind-mount read-only: {exc.stderr.decode().strip()}", False)
    yield source, ReadOnlyView(view)
    subprocess.run(["umount", "-l", str(view)], check=False, timeout=30)


@pytest.fixture
def restart_postgresql() -> str:
    """The command that restarts the local PostgreSQL cluster."""
    clusters = sorted(Path("/etc/postgresql").glob("*/main")) if Path("/etc/postgresql").is_dir() else []
    _needs("restarting PostgreSQL needs root and pg_ctlcluster",
           os.geteuid() == 0 and shutil.which("pg_ctlcluster") is not None and bool(clusters))
    version = clusters[-1].parent.name
    return f"pg_ctlcluster --skip-systemctl-redirect {version} main restart"
