"""User text made safe for where it is shown: a terminal, a spreadsheet, a strict JSON parser.

Names of sweeps, trials and params come from users (and, on a shared ledger, from other users).
Shown raw, a name holding terminal escapes can retitle the terminal or clear the report, a
right-to-left override makes ``gnp.exe`` read as ``exe.png``, and a CSV cell starting with ``=``
runs as a formula in a spreadsheet.

Example:
    >>> printable("lr\\x1b[2J\\u202egnp.exe")
    'lr\\\\x1b[2J\\\\u202egnp.exe'
    >>> csv_cell('=HYPERLINK("http://x","y")'), csv_cell("-1.5"), csv_cell(-1.5)
    ('\\'=HYPERLINK("http://x","y")', '-1.5', -1.5)
    >>> finite({"kwh": float("nan"), "values": [1.0, float("inf")]})
    {'kwh': None, 'values': [1.0, None]}
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _unsafe(ch: str) -> bool:
    # Cc: C0 and C1 controls (ESC, BEL, CSI...); Cf: bidi overrides and invisible format marks.
    return unicodedata.category(ch) in ("Cc", "Cf") or ch in "\u2028\u2029"


def printable(text: str, keep: str = "") -> str:
    """``text`` with every control, bidi-override and invisible character shown escaped
    (``\\x1b``, ``\\u202e``), safe to print on a terminal or in a human-readable file;
    the characters in ``keep`` (say ``"\\n"`` for a message of several lines) are kept."""
    if text.isprintable():
        return text
    return "".join(ch.encode("unicode_escape").decode("ascii") if _unsafe(ch) and ch not in keep else ch for ch in text)


def shown_name(name: str, width: int | None = None) -> str:
    """A sweep's or trial's name as a person reads it on one line: escaped as
    :func:`printable` does, line breaks too, and an empty name (Optuna accepts one) as ``""``,
    which is also how to give it back on a command line, and so is one that begins or ends with
    a space (``"lr "``); with ``width``, a longer name keeps its
    start and end around an ellipsis (the JSON formats give it in full).

    Example:
        >>> shown_name("lr-search"), shown_name(""), shown_name("a\\nb"), shown_name("lr ")
        ('lr-search', '""', 'a\\\\nb', '"lr "')
        >>> shown_name("x" * 300, width=20)
        'xxxxxxxxxxxxx…xxxxxx'
    """
    shown = printable(name) if name else '""'
    if name != name.strip():  # "lr " and "lr" are two sweeps: show where the spaces are
        shown = f'"{shown}"'
    if width is not None and len(shown) > width:
        tail = max(1, width // 3)
        shown = shown[: width - tail - 1] + "…" + shown[-tail:]
    return shown


def csv_cell(value: Any) -> Any:
    """``value`` as a CSV cell that no spreadsheet runs as a formula (OWASP's advice: a text
    beginning with ``= + - @``, tab or carriage return is prefixed with ``'``) and no terminal
    obeys: control characters are written escaped as :func:`printable` shows them, a carriage
    return too (a bare one ends a row in Excel, so a formula after it would start the next); a
    line break or tab is kept (the writer quotes the cell).
    Numbers, and texts that are plain numbers, stay as they are.

    Example:
        >>> csv_cell("=1+1"), csv_cell("-2.5"), csv_cell("a\\r=cmd|calc"), csv_cell("x\\x1b]0;t\\x07")
        ("'=1+1", '-2.5', 'a\\\\r=cmd|calc', 'x\\\\x1b]0;t\\\\x07')
    """
    if not isinstance(value, str):
        return value
    if value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        value = "'" + value
    return printable(value, keep="\n\t")  # a line break or tab stays inside its quoted cell, as CSV allows


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (strict JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, plural unless the count is one (nouns of this project take an s).

    Example:
        >>> counted(1, "sweep"), counted(3, "sweep"), counted(0, "trial")
        ('1 sweep', '3 sweeps', '0 trials')
    """
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key that orders the numbers inside names by value: Ray's ``trial_00002`` and
    ``2_lr=0.1`` before ``trial_00010`` and ``10_lr=0.1``, as a person counts.

    Example:
        >>> sorted(["10_lr=0.1", "2_lr=0.1", "1_lr=0.3"], key=natural_key)
        ['1_lr=0.3', '2_lr=0.1', '10_lr=0.1']
    """
    return tuple((0, int(part)) if part.isdigit() else (1, part.casefold()) for part in _DIGITS.split(text) if part)
