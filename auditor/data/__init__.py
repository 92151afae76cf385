"""Reference tables bundled with the package (see README.md in this folder for sources)."""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources


@cache
def read_table(name: str) -> tuple[dict[str, str], ...]:
    """Rows of the bundled CSV table ``name`` (e.g. ``"hardware.csv"``), read once."""
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    return tuple(csv.DictReader(text.splitlines()))
