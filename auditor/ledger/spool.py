"""Trials the ledger could not take yet, kept in a local file until it can.

When a ledger stops answering (its disk full or read-only, its server restarting), a plugin
keeps the trials it could not write in memory and in a *spool file*: one JSON document per
line, rewritten whole (write, fsync, rename) each time, so that a kill leaves either the old
file or the new one. Once the ledger answers again the plugin writes them and deletes the file.
A process that dies before that leaves its file behind; the next plugin or ``audit`` command
that opens the same ledger writes it (:func:`replay`), and until then reports say how many
trials are held back (:func:`held_back`).

The files live in the setting ``spool_dir`` (default ``$XDG_STATE_HOME/auditor/held-back``,
i.e. ``~/.local/state/auditor/held-back``), readable by their owner only.

Example:
    >>> import tempfile
    >>> from auditor.ledger import TrialRecord
    >>> directory = Path(tempfile.mkdtemp())
    >>> spool = Spool("/data/ledger.db", directory)
    >>> spool.keep([TrialRecord(sweep="s", trial_key="1", state="complete", start_time=0.0)],
    ...            {"s": ("optuna", {})})
    >>> held_back("/data/ledger.db", directory, include_live=True)
    1
    >>> spool.clear(); held_back("/data/ledger.db", directory, include_live=True)
    0
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from auditor.ledger.records import EnergyReading, TrialRecord

logger = logging.getLogger("auditor")

FORMAT = 1
SUFFIX = ".jsonl"


def default_spool_dir() -> Path:
    """``$XDG_STATE_HOME/auditor/held-back`` (``~/.local/state/auditor/held-back``)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "auditor" / "held-back"


def _prefix(location: str) -> str:
    return hashlib.sha256(location.encode()).hexdigest()[:16]


def _record_to_json(record: TrialRecord) -> str:
    data = asdict(record)
    data["state"] = record.state.value  # type: ignore[union-attr]
    return json.dumps(data, default=str)


def _record_from_json(line: str) -> TrialRecord:
    data = json.loads(line)
    data["energy"] = {domain: EnergyReading(**reading) for domain, reading in data.get("energy", {}).items()}
    return TrialRecord(**data)


class Spool:
    """One writer's spool file for one ledger.

    Args:
        location: the ledger's location (``Ledger.location``).
        directory: where spool files live (default: :func:`default_spool_dir`).
    """

    def __init__(self, location: str, directory: Path | str | None = None) -> None:
        self.location = location
        self.directory = Path(directory) if directory else default_spool_dir()
        host = "".join(c if c.isalnum() or c in "-." else "_" for c in socket.gethostname())
        self.path = self.directory / f"{_prefix(location)}.{host}.{os.getpid()}.{id(self):x}{SUFFIX}"

    def keep(self, records: list[TrialRecord], sweeps: dict[str, tuple[str, dict[str, Any]]]) -> None:
        """Replace the file's contents with ``records`` (and the sweeps they belong to).

        Raises:
            OSError: the file could not be written (the records are still the caller's).
        """
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        header = {"auditor_held_back": FORMAT, "ledger": self.location, "host": socket.gethostname(),
                  "pid": os.getpid(), "written_at": time.time(),
                  "sweeps": {name: {"framework": fw, "attrs": attrs} for name, (fw, attrs) in sweeps.items()}}
        lines = [json.dumps(header, default=str), *(_record_to_json(r) for r in records)]
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def clear(self) -> None:
        """Delete the file: everything in it is in the ledger."""
        self.path.unlink(missing_ok=True)


def _owner_alive(header: dict[str, Any]) -> bool:
    if header.get("host") != socket.gethostname():
        return False  # another machine's file, in a shared home: its owner wrote it and left
    try:
        os.kill(int(header.get("pid", 0)), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return int(header.get("pid", 0)) > 0


def _read(path: Path) -> tuple[dict[str, Any], list[TrialRecord]] | None:
    """A spool file's header and records, or None if it is not one (it is then left alone)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        header = json.loads(lines[0])
        if not isinstance(header, dict) or header.get("auditor_held_back") != FORMAT:
            return None
        return header, [_record_from_json(line) for line in lines[1:] if line.strip()]
    except (OSError, IndexError, ValueError, TypeError) as exc:
        logger.warning("auditor: %s is not a readable file of held-back trials (%s); left as it is", path, exc)
        return None


def _files(location: str, directory: Path | str | None, include_live: bool) -> list[tuple[Path, dict[str, Any], list[TrialRecord]]]:
    directory = Path(directory) if directory else default_spool_dir()
    found = []
    for path in sorted(directory.glob(f"{_prefix(location)}.*{SUFFIX}")):
        content = _read(path)
        if content is None or content[0].get("ledger") != location:
            continue
        if not include_live and _owner_alive(content[0]):
            continue  # its owner writes it itself once the ledger answers
        found.append((path, *content))
    return found


def held_back(location: str, directory: Path | str | None = None, include_live: bool = False) -> int:
    """How many trials meant for the ledger at ``location`` wait in spool files (those of
    processes still running are theirs to write, and counted only with ``include_live``)."""
    return sum(len(records) for _, _, records in _files(location, directory, include_live))


def replay(ledger: Any, directory: Path | str | None = None) -> int:
    """Write the trials that dead processes left in spool files for ``ledger`` and delete
    each file once written. A file the ledger still refuses is kept.

    Returns:
        How many trials were written.

    Raises:
        LedgerError: the ledger refused them; the files are kept.
    """
    written = 0
    for path, header, records in _files(ledger.location, directory, include_live=False):
        for name, sweep in (header.get("sweeps") or {}).items():
            ledger.ensure_sweep(name, framework=sweep.get("framework", "run"), attrs=sweep.get("attrs") or {})
        ledger.record_trials(records)
        path.unlink(missing_ok=True)
        written += len(records)
        logger.info("auditor: %d held-back trials from %s written to the ledger", len(records), path.name)
    return written
