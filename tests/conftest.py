"""Shared fixtures: a clean working directory and environment, and real database servers.

PostgreSQL (127.0.0.1:5432, trust auth) and MariaDB (127.0.0.1:3306, root, no password) are
used for real. Where no server answers, their tests skip with the reason; with CI=true they
fail instead, so CI cannot go green without them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from auditor.cli import main

POSTGRES_ADMIN_URL = os.environ.get("AUDITOR_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_ADMIN_URL = os.environ.get("AUDITOR_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test")


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run every test in its own empty directory with no AUDITOR_* variables set, and its own
    state directory (where held-back trials are spooled)."""
    for key in list(os.environ):
        if key.startswith("AUDITOR_") and not key.startswith("AUDITOR_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    work = tmp_path / "project"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} not reachable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must have it running")
    pytest.skip(message)


def _fresh_database(admin_url: str, server: str) -> Iterator[str]:
    """Create an empty database on a real server for one test, and drop it afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"auditor_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True, connect_args={"connect_timeout": 3})
    quoted = admin.dialect.identifier_preparer.quote_identifier(name)
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {quoted}"))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means: not here
        admin.dispose()
        _unavailable(server, exc)
    yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    force = " WITH (FORCE)" if admin.dialect.name == "postgresql" else ""
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {quoted}{force}"))
    admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test, dropped afterwards."""
    yield from _fresh_database(POSTGRES_ADMIN_URL, "PostgreSQL at 127.0.0.1:5432")


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh, empty MariaDB database for this test, dropped afterwards."""
    yield from _fresh_database(MARIADB_ADMIN_URL, "MariaDB at 127.0.0.1:3306")


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a SQLite file, a PostgreSQL and a MariaDB database."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return request.getfixturevalue("postgres_url" if request.param == "postgresql" else "mariadb_url")


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def audit(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run `audit ARGS...` in this process and capture its exit code and output."""

    def run(*args: str) -> Result:
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One local Ray for the whole test session: 2 CPUs and 2 logical GPUs, metered through the
    simulated GPU source (300 W each), which is how Ray workers see AUDITOR_SIMULATE_GPUS."""
    import ray

    os.environ["AUDITOR_SIMULATE_GPUS"] = "2x300"
    if ray.is_initialized():  # e.g. by a README snippet run earlier
        ray.shutdown()
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()
    os.environ.pop("AUDITOR_SIMULATE_GPUS", None)
