from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from auditor.cli import main


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
