"""The README's Python snippets run, and print what their comments say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_snippets() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("code", BLOCKS, ids=[f"snippet-{i}" for i in range(len(BLOCKS))])
def test_readme_snippet(code: str) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})  # noqa: S102 - our own README
    for expected in expected_outputs(code):
        assert expected in out.getvalue()


def expected_outputs(code: str) -> list[str]:
    """What a snippet says it prints: the comment on a print line, or on the line after it."""
    expected, previous = [], ""
    for line in (raw.strip() for raw in code.splitlines()):
        if line.startswith("print(") and "  # " in line:
            expected.append(line.split("  # ", 1)[1].strip())
        elif line.startswith("# ") and previous.startswith("print("):
            expected.append(line[2:].strip())
        previous = line
    return expected


def test_snippets_promise_some_output() -> None:
    assert sum(len(expected_outputs(code)) for code in BLOCKS) >= 3
