"""What the CLI commands share: output, settings, the ledger option."""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from enum import Enum
from pathlib import Path
from typing import Any, TextIO

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from auditor.config import Settings, load_settings
from auditor.errors import AuditorError, UnsafeSpoolError
from auditor.ledger import Ledger
from auditor.ledger.spool import held_back, replay
from auditor.model.text import finite, printable

LEDGER_HELP = "Ledger file path or SQLAlchemy URL (default: setting `ledger`, AUDITOR_LEDGER, .auditor/ledger.db)"


def number_in(least: float | None = None, most: float | None = None) -> Callable[[str], float]:
    """The parser of a number option: a finite number within ``[least, most]``, or one clear
    error (click's own range check called ``nan`` "not greater than or equal to 0").

    Example:
        >>> number_in(0)("2.5")
        2.5
    """
    def parse(text: str) -> float:
        try:
            number = float(text)
        except (TypeError, ValueError):
            raise typer.BadParameter(f"{text!r} is not a number") from None
        if not math.isfinite(number):
            raise typer.BadParameter(f"{text} is not a finite number")
        if (least is not None and number < least) or (most is not None and number > most):
            bounds = f"at least {least:g}" if most is None else f"from {least or 0:g} to {most:g}"
            raise typer.BadParameter(f"{text} is out of range: give a number {bounds}")
        return number

    return parse


class TableOrJson(str, Enum):
    """Output formats of the listing commands."""

    table = "table"
    json = "json"


class SafeConsole(Console):
    """A console that prints every text as it is: no markup (a sweep called ``[bold]`` stays
    so) and control characters escaped (a name holding terminal escapes cannot retitle the
    terminal or clear the report)."""

    def render_str(self, text: str, **kwargs: Any) -> Any:
        return super().render_str(printable(text, keep="\n"), **kwargs)


def console(file: TextIO | None = None) -> Console:
    """A console on ``file`` (default: the current stdout), as wide as ``COLUMNS``, or the
    terminal, or 120 characters when piped (so tables do not fold)."""
    file = file or sys.stdout
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() and int(columns) > 0 else None if file.isatty() else 120
    return SafeConsole(file=file, width=width, highlight=False, soft_wrap=False, markup=False, emoji=False)


def to_json(value: Any) -> str:
    """``value`` as strict JSON: NaN and infinite numbers become null, which every parser reads."""
    return json.dumps(finite(value), indent=2, ensure_ascii=False, default=str, allow_nan=False)


def print_json(value: Any) -> None:
    """Print one JSON document on stdout."""
    typer.echo(to_json(value))


# Options given before the command (`audit --ledger URL report`), for every command.
GLOBAL_OPTIONS: dict[str, Any] = {}


def settings_with(refused: list[str] | None = None, **overrides: Any) -> Settings:
    """Settings in force, with the global options and then the command's flags on top; with
    ``refused``, bad settings in files and variables are listed there instead of raised."""
    merged = {**GLOBAL_OPTIONS, **{k: v for k, v in overrides.items() if v is not None}}
    return load_settings(merged, refused=refused)


class OneLineTable(Table):
    """A table whose every cell stays on its row: a name holding a line break or a tab shows
    it escaped (``a\\nb``), never as a second row."""

    def add_row(self, *cells: Any, **kwargs: Any) -> None:
        super().add_row(*(printable(c) if isinstance(c, str) else c for c in cells), **kwargs)


def fit_headers(table: Table, console: Console) -> Table:
    """Where ``table`` is wider than ``console``, put each long header on two lines at its first
    space (``facility`` over ``mWh``), and if it is still too wide, break a header word at its
    slashes (``(done/`` over ``stopped/failed)``) to the width of its column's cells, before rich
    folds anything: header words stay whole, and only a long name may fold, within its column.
    """
    def too_wide() -> bool:
        return Measurement.get(console, console.options.update(max_width=100_000), table).maximum > console.width

    if not too_wide():
        return table
    for column in table.columns:
        header = str(column.header)
        if len(header) > 10 and " " in header:
            column.header = header.replace(" ", "\n", 1)
    if too_wide():
        for column in table.columns:
            cells = max((len(str(cell)) for cell in column.cells), default=0)
            column.header = "\n".join(_slash_lines(line, max(cells, 8)) for line in str(column.header).split("\n"))
    for column in table.columns:
        column.min_width = max(len(word) for line in str(column.header).split("\n") for word in line.split() or [""])
    return table


def _slash_lines(text: str, width: int) -> str:
    """``text`` broken after its slashes into lines of at most ``width`` where it is longer.

    Example:
        >>> _slash_lines("(done/stopped/failed)", 11)
        '(done/\\nstopped/\\nfailed)'
    """
    if len(text) <= width or "/" not in text:
        return text
    pieces = [piece + "/" for piece in text.split("/")]
    pieces[-1] = pieces[-1][:-1]
    lines = [""]
    for piece in pieces:
        if lines[-1] and len(lines[-1]) + len(piece) > width:
            lines.append("")
        lines[-1] += piece
    return "\n".join(lines)


def make_table(*headers: str) -> Table:
    """A borderless table whose cells fold rather than being cut short."""
    table = OneLineTable(box=None, pad_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def write_atomically(path: Path, text: str, private: bool = False) -> None:
    """Replace ``path`` with ``text`` in one step: a reader never sees half a file. It keeps
    the mode of the file it replaces (a new one: as an ordinary new file would be); ``private``
    (it holds a secret) makes it readable by its owner only."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        try:
            mode = path.stat().st_mode & 0o777
        except OSError:
            mode = 0o666 & ~umask
        os.fchmod(fd, 0o600 if private else mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def open_ledger(settings: Settings) -> Iterator[tuple[Ledger, int]]:
    """The ledger of ``settings``, and how many trials meant for it are still held back.

    Trials that a search could not write when its ledger was down (and that it left in a spool
    file when it ended) are written first; if the ledger still refuses them, a warning says so
    and the count tells the report what is missing.
    """
    with Ledger.open(settings.ledger, create=False) as ledger:  # a command that reads creates nothing
        missing = 0
        try:
            written = replay(ledger, settings.spool_dir)
            if written:
                trials = "1 trial" if written == 1 else f"{written} trials"
                typer.echo(f"{trials} held back by an earlier search now written to {ledger.location}", err=True)
        except UnsafeSpoolError as exc:
            typer.echo(f"warning: {exc}", err=True)
        except AuditorError as exc:
            missing = held_back(ledger.location, settings.spool_dir)
            typer.echo(f"warning: {missing} trials held back by an earlier search are not in this ledger yet: {exc}", err=True)
        yield ledger, missing


def stderr_console() -> Console:
    """A console on stderr, where progress goes (stdout stays the command's output)."""
    return Console(stderr=True, highlight=False, markup=False, emoji=False)


@contextmanager
def progress_bar(what: str, console_: Console | None = None) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr for a long command (rich, which typer already brings), shown
    only on a terminal: piped or redirected, it prints nothing. Yields ``update(done, total)``.

    Example:
        >>> import io
        >>> with progress_bar("Importing trials", Console(file=io.StringIO())) as update:
        ...     update(500, 1000)
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    out = console_ or stderr_console()
    columns = (TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=out, transient=True, disable=not out.is_terminal) as progress:
        task = progress.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def working(what: str, console_: Console | None = None) -> Any:
    """A spinner on stderr while something long runs (``with working("Reading the ledger"):``),
    on a terminal only; elsewhere nothing."""
    out = console_ or stderr_console()
    return out.status(what) if out.is_terminal else nullcontext()
