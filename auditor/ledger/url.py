"""Where a ledger lives: a file path (SQLite) or any SQLAlchemy URL.

Example:
    >>> to_url("postgresql://me@db.example.org/ml").drivername in ("postgresql+psycopg", "postgresql+psycopg2")
    True
    >>> to_url("/tmp/x/ledger.db").render_as_string()
    'sqlite:////tmp/x/ledger.db'
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from auditor.errors import LedgerError

# For a URL that names no driver, the first one installed is used.
_DRIVERS = {
    "postgresql": [("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2")],
    "mysql": [("pymysql", "mysql+pymysql"), ("MySQLdb", "mysql+mysqldb")],
    "mariadb": [("pymysql", "mariadb+pymysql"), ("MySQLdb", "mariadb+mysqldb")],
}
_EXTRAS = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}
SUPPORTED = ("sqlite", "postgresql", "mysql", "mariadb")


def to_url(target: str | Path) -> URL:
    """The SQLAlchemy URL of a ledger given as a path or a URL.

    Raises:
        LedgerError: the URL cannot be parsed, names an unsupported database, or needs a
            driver that is not installed.
    """
    text = str(target).strip()
    if not text:
        raise LedgerError("empty ledger location: give a file path or a database URL")
    if "://" not in text:
        return URL.create("sqlite", database=_file_of(Path(text).expanduser()))
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        raise LedgerError(
            f"cannot read ledger URL {display(text)!r}: write e.g. postgresql://user@host/db or a file path"
        ) from None
    backend = url.get_backend_name()
    if backend not in SUPPORTED:
        raise LedgerError(
            f"ledger URL uses {backend!r}, which is not supported: use a file path (SQLite), "
            "postgresql://, mysql:// or mariadb://"
        )
    if backend == "sqlite" and url.database not in (None, "", ":memory:"):
        url = url.set(database=_file_of(Path(url.database).expanduser()))
    if "+" not in url.drivername and backend in _DRIVERS:
        for module, drivername in _DRIVERS[backend]:
            if importlib.util.find_spec(module) is not None:
                return url.set(drivername=drivername)
        raise LedgerError(
            f"no {backend} driver installed for ledger {display(text)}: pip install 'hpo-auditor[{_EXTRAS[backend]}]'"
        )
    return url


_SECRET_NAME = re.compile(r"pass|pwd|secret|token|key|credential", re.IGNORECASE)
_SECRET_PAIR = re.compile(r"([?&;]\s*[^=&;]*(?:pass|pwd|secret|token|key|credential)[^=&;]*=)[^&;#]*", re.IGNORECASE)


def _file_of(path: Path) -> str:
    """The ledger file at ``path``, links followed; a link to nothing is refused, not followed
    (opening it would create a ledger wherever the link points).

    Raises:
        LedgerError: ``path`` is a symbolic link whose target does not exist.
    """
    if path.is_symlink() and not path.exists():
        raise LedgerError(f"ledger {path} is a symbolic link to {os.readlink(path)}, which does not exist: "
                          "point the link at a ledger, or give the ledger's own path")
    return str(path.resolve())


def display(target: str | Path | URL) -> str:
    """The ledger's location for messages, with any password hidden: the URL's own (``***``),
    and query parameters that carry one (``password=``, ``sslpassword=``, ``token=``...), in a
    URL that does not parse too.

    Example:
        >>> display("postgresql://me:hunter2@db/ml?sslpassword=hunter3&sslmode=require")
        'postgresql://me:***@db/ml?sslmode=require&sslpassword=***'
        >>> display("postgresql://me:hunter2@db:port/ml")
        'postgresql://***'
    """
    if isinstance(target, URL):
        return _masked(target)
    text = str(target)
    if "://" not in text:
        return text
    try:
        return _masked(make_url(text))
    except (ArgumentError, ValueError):
        scheme, _, rest = text.partition("://")
        return f"{scheme}://***" if "@" in rest else _SECRET_PAIR.sub(r"\1***", text)


def _masked(url: URL) -> str:
    query = {name: ("***" if _SECRET_NAME.search(name) else value) for name, value in url.query.items()}
    return url.set(query=query).render_as_string(hide_password=True).replace("%2A%2A%2A", "***")
