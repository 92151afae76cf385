"""Trials the ledger could not take yet, kept in a local file until it can.

When a ledger stops answering (its disk full or read-only, its server restarting), a plugin
keeps the trials it could not write in memory and in a *spool file*: one JSON document per
line, rewritten whole (write, fsync, rename) each time, so that a kill leaves either the old
file or the new one. Once the ledger answers again the plugin writes them and deletes the file.
A process that dies before that leaves its file behind; the next plugin or ``audit`` command
that opens the same ledger writes it (:func:`replay`), and until then reports say how many
trials are held back (:func:`held_back`).

The files live in the setting ``spool_dir`` (default ``$XDG_STATE_HOME/auditor/held-back``,
i.e. ``~/.local/state/auditor/held-back``). What is replayed goes into the ledger as if this
user had measured it, so only a folder this user owns and no one else can write is used (no
symbolic link), and only the regular files this user owns in it; otherwise nothing is written
or replayed and one line says how to fix the permissions.

One bad record never holds the others back: a line that is not a valid record, a file that is
not a spool file, or a record that differs from a finished trial already in the ledger is *set
aside* once, in a ``.set-aside`` file with the reason in its first line (``audit doctor`` lists
them, ``audit doctor --drop-set-aside`` deletes them), and the rest is written.

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

import errno
import hashlib
import json
import logging
import os
import secrets
import socket
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from auditor.errors import AuditorError, InvalidRecordError, UnsafeSpoolError
from auditor.ledger.checks import checked_sweep_attrs, record_from_json, record_to_json
from auditor.ledger.records import TrialRecord, TrialState

logger = logging.getLogger("auditor")

FORMAT = 1
SUFFIX = ".jsonl"
SET_ASIDE = ".set-aside"
MAX_BYTES = 256 * 2**20  # a spool file larger than this is not read (set aside unread)
MAX_HEADER_BYTES = 4 * 2**20  # a header line is read up to this
FILES_SAID = 3  # held-back files set aside that a replay names one by one; the rest in one line
REPLAY_BATCH = 2_000  # records written per transaction when a spool file is replayed
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def default_spool_dir() -> Path:
    """``$XDG_STATE_HOME/auditor/held-back`` (``~/.local/state/auditor/held-back``)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "auditor" / "held-back"


def _directory(directory: Path | str | None) -> Path:
    return Path(directory) if directory else default_spool_dir()


def _prefix(location: str) -> str:
    return hashlib.sha256(location.encode()).hexdigest()[:16]


def trial_count(records: list[TrialRecord]) -> int:
    """How many trials ``records`` hold: a trial's heartbeats count once, idle rows not at all."""
    return len({(r.sweep, r.trial_key) for r in records if r.state is not TrialState.IDLE})


# -- who may write here -------------------------------------------------------------------------


def spool_problem(directory: Path | str | None = None) -> str | None:
    """Why the folder of held-back trials cannot be trusted, or None (also when it does not exist).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp()); folder.chmod(0o777)
        >>> spool_problem(folder).endswith(f"or fix it with: chmod 700 {folder})")
        True
    """
    path = _directory(directory)
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"the folder of held-back trials {path} cannot be read ({exc.strerror})"
    if stat.S_ISLNK(info.st_mode):
        why = "is a symbolic link"
    elif not stat.S_ISDIR(info.st_mode):
        why = "is not a folder"
    elif hasattr(os, "getuid") and info.st_uid != os.getuid():
        why = f"belongs to another user (uid {info.st_uid})"
    elif info.st_mode & 0o022:
        why = f"can be written by others (mode {stat.S_IMODE(info.st_mode):o})"
    else:
        return None
    return (f"the folder of held-back trials {path} {why}: its files are neither written nor replayed "
            f"(set spool_dir to a folder only you can write, or fix it with: chmod 700 {path})")


def _check_directory(directory: Path) -> None:
    problem = spool_problem(directory)
    if problem:
        raise UnsafeSpoolError(problem)


def _open_own(path: Path) -> BinaryIO:
    """``path`` opened for reading if it is a regular file of this user's that no one else can
    write (the caller closes it).

    Raises:
        UnsafeSpoolError: someone else's file, a link, or one others can write.
        InvalidRecordError: larger than :data:`MAX_BYTES`.
        OSError: it cannot be read.
    """
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    f = os.fdopen(fd, "rb")
    try:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != os.getuid()) or info.st_mode & 0o022:
            raise UnsafeSpoolError(f"{path} is not a file of yours that only you can write: not replayed, left as it is")
        if info.st_size > MAX_BYTES:
            raise InvalidRecordError(f"larger than {MAX_BYTES // 2**20} MiB")
    except BaseException:
        f.close()
        raise
    return f


def _read_own(path: Path) -> str:
    """The text of ``path``, checked as :func:`_open_own` does."""
    with _open_own(path) as f:
        return f.read().decode("utf-8", errors="replace")


def _write_new(directory: Path, name: str, text: str) -> Path:
    """Write ``text`` as ``directory/name`` at once (a fresh temporary file, fsync, rename)."""
    tmp = directory / f".{name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | _NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return directory / name


# -- whose file it is ---------------------------------------------------------------------------


def _process_identity(pid: int) -> str | None:
    """The boot and start time of process ``pid`` (Linux), which a reused PID does not share."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        started = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None
    return f"{boot}/{started}"


def _owner_alive(header: dict[str, Any]) -> bool:
    if header.get("host") != socket.gethostname():
        return False  # another machine's file, in a shared home: its owner wrote it and left
    pid = header.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        pass
    identity = header.get("process")
    now = _process_identity(pid)
    return identity is None or now is None or identity == now  # a reused PID is another process


# -- writing one ----------------------------------------------------------------------------------


class Spool:
    """One writer's spool file for one ledger.

    Args:
        location: the ledger's location (``Ledger.location``).
        directory: where spool files live (default: :func:`default_spool_dir`).
    """

    def __init__(self, location: str, directory: Path | str | None = None) -> None:
        self.location = location
        self.directory = _directory(directory)
        self._name = f"{_prefix(location)}.{_host_label()}.{os.getpid()}.{secrets.token_hex(6)}"
        self.path = self.directory / f"{self._name}{SUFFIX}"

    def keep(self, records: list[TrialRecord], sweeps: dict[str, tuple[str, dict[str, Any]]]) -> None:
        """Replace the file's contents with ``records`` (and the sweeps they belong to).

        Raises:
            OSError: the file could not be written (the records are still the caller's).
            UnsafeSpoolError: the folder could be written by someone else (nothing is written).
        """
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        _check_directory(self.directory)
        header = _header(self.location)
        header["sweeps"] = {name: {"framework": fw, "attrs": attrs} for name, (fw, attrs) in sweeps.items()}
        lines = [json.dumps(header, default=str), *(record_to_json(r) for r in records)]
        _write_new(self.directory, self.path.name, "\n".join(lines) + "\n")

    def set_aside(self, lines: list[str], why: str) -> Path | None:
        """Keep ``lines`` (records the ledger must not take) in a ``.set-aside`` file; returns
        it, or None if even that could not be written (a warning says so)."""
        return _set_aside(self.directory, self.location, f"{self._name}.{secrets.token_hex(3)}", lines, [why])

    def clear(self) -> None:
        """Delete the file: everything in it is in the ledger."""
        self.path.unlink(missing_ok=True)


def _host_label() -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in socket.gethostname())[:64]


def _header(location: str, **extra: Any) -> dict[str, Any]:
    return {"auditor_held_back": FORMAT, "ledger": location, "host": socket.gethostname(), "pid": os.getpid(),
            "process": _process_identity(os.getpid()), "written_at": time.time(), **extra}


def _set_aside(directory: Path, location: str, stem: str, lines: list[str], why: list[str], say: bool = True) -> Path | None:
    header = _header(location, set_aside=why)
    del header["auditor_held_back"]
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        _check_directory(directory)
        path = _write_new(directory, f"{stem}{SET_ASIDE}", "\n".join([json.dumps(header), *lines]) + "\n")
    except (OSError, AuditorError) as exc:
        logger.warning("%d records that the ledger must not take could not be set aside (%s); dropped: %s",
                       len(lines), exc, "; ".join(why)[:300])
        return None
    if not say:
        return path
    logger.warning("%d held-back line%s set aside in %s, not written to the ledger: %s. `audit doctor` "
                   "lists them, `audit doctor --drop-set-aside` deletes them", len(lines), "" if len(lines) == 1 else "s",
                   path, "; ".join(why)[:300])
    return path


@dataclass
class SetAside:
    """A ``.set-aside`` file: records that were not written, and why."""

    path: Path
    why: list[str] = field(default_factory=list)
    lines: int = 0


def set_aside_files(location: str, directory: Path | str | None = None) -> list[SetAside]:
    """The set-aside files for the ledger at ``location``, oldest first."""
    found = []
    for path in sorted(_directory(directory).glob(f"{_prefix(location)}.*{SET_ASIDE}")):
        try:
            lines = _read_own(path).splitlines()
            header = json.loads(lines[0]) if lines else {}
            why = header.get("set_aside") if isinstance(header, dict) else None
            found.append(SetAside(path, [str(w) for w in why] if isinstance(why, list) else ["(no reason recorded)"],
                                  max(len(lines) - 1, 0)))
        except (OSError, AuditorError, ValueError):
            found.append(SetAside(path, ["(not readable)"]))
    return found


# -- reading them back ----------------------------------------------------------------------------


@dataclass
class _SpoolFile:
    """A spool file whose header was read; its records are read as they are asked for."""

    path: Path
    header: dict[str, Any]
    handle: BinaryIO

    def batches(self, size: int = REPLAY_BATCH) -> Iterator[tuple[list[TrialRecord], list[tuple[str, str]]]]:
        """The file's records, ``size`` lines at a time, with its bad lines and why: a file of
        hundreds of MiB is read without holding it whole."""
        records: list[TrialRecord] = []
        bad: list[tuple[str, str]] = []
        for raw in self.handle:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not line.strip():
                continue
            try:
                records.append(record_from_json(line))
            except InvalidRecordError as exc:
                bad.append((line, str(exc)))
            if len(records) + len(bad) >= size:
                yield records, bad
                records, bad = [], []
        if records or bad:
            yield records, bad

    def close(self) -> None:
        self.handle.close()


def _header_of(first_line: str) -> dict[str, Any]:
    """A spool file's header.

    Raises:
        InvalidRecordError: it is not a spool file at all.
    """
    try:
        header = json.loads(first_line) if first_line.strip() else None
    except (ValueError, RecursionError):  # not JSON, or nested too deep to read
        header = None
    if not isinstance(header, dict) or header.get("auditor_held_back") != FORMAT or not isinstance(header.get("ledger"), str):
        raise InvalidRecordError("not a file of held-back trials (no header line)")
    sweeps = header.get("sweeps") or {}
    if not isinstance(sweeps, dict) or not all(
        isinstance(name, str) and isinstance(s, dict) and isinstance(s.get("framework", "run"), str)
        and isinstance(s.get("attrs") or {}, dict) for name, s in sweeps.items()
    ):
        raise InvalidRecordError("its header's sweeps are not a mapping of names to a framework and attributes")
    return header


def _spool_files(location: str, directory: Path, include_live: bool) -> Iterator[_SpoolFile | tuple[Path, str, str]]:
    """The spool files for ``location``, one at a time (the caller closes each): opened with
    their header read, or ``(path, text, why)`` for one that is not a spool file."""
    for path in sorted(directory.glob(f"{_prefix(location)}.*{SUFFIX}")):
        try:
            handle = _open_own(path)
        except UnsafeSpoolError as exc:
            logger.warning("%s", exc)
            continue
        except InvalidRecordError as exc:
            yield path, "", str(exc)
            continue
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a symbolic link: never followed
                logger.warning("%s is a symbolic link: not replayed, left as it is", path)
            continue  # otherwise gone meanwhile (its owner wrote it), or not ours to read
        try:
            header = _header_of(handle.readline(MAX_HEADER_BYTES).decode("utf-8", errors="replace"))
        except InvalidRecordError as exc:
            handle.seek(0)
            text = handle.read().decode("utf-8", errors="replace")
            handle.close()
            yield path, text, str(exc)
            continue
        if header["ledger"] != location or not (include_live or not _owner_alive(header)):
            handle.close()  # another ledger's file that shares the prefix, or a live owner's: it writes its own
            continue
        yield _SpoolFile(path, header, handle)


def held_back(location: str, directory: Path | str | None = None, include_live: bool = False) -> int:
    """How many trials meant for the ledger at ``location`` wait in spool files (those of
    processes still running are theirs to write, and counted only with ``include_live``); none
    when the folder cannot be trusted (:func:`spool_problem` says why)."""
    folder = _directory(directory)
    if spool_problem(folder):
        return 0
    count = 0
    for spooled in _spool_files(location, folder, include_live):
        if isinstance(spooled, _SpoolFile):
            keys = {(r.sweep, r.trial_key) for records, _ in spooled.batches() for r in records if r.state is not TrialState.IDLE}
            spooled.close()
            count += len(keys)
    return count


CONFLICT = "differs from the finished trial already in the ledger"


def write_apart(ledger: Any, records: list[TrialRecord], keep_finished: bool = False) -> list[tuple[TrialRecord, str]]:
    """Write ``records``; if the ledger refuses the batch for a record's content, write them
    one by one so that only the refused ones are left out.

    Returns:
        The ``(record, why)`` of those left out: refused, or (``keep_finished``) differing from
        a finished trial.

    Raises:
        LedgerError: the ledger cannot be written at all (down, locked, full): nothing is lost,
            the caller still holds every record.
    """
    refused: list[tuple[TrialRecord, str]] = []
    try:
        conflicts = ledger.record_trials(records, keep_finished=keep_finished)
    except InvalidRecordError:
        conflicts = []
        for record in records:
            try:
                conflicts += ledger.record_trials([record], keep_finished=keep_finished)
            except InvalidRecordError as exc:
                refused.append((record, str(exc)))
    return refused + [(record, CONFLICT) for record in conflicts]


def _replay_one(ledger: Any, spooled: _SpoolFile, say: bool = True) -> tuple[int, bool]:
    """Write one spool file's trials and delete it; returns how many were written, and whether
    some of its lines were set aside (said in a warning if ``say``)."""
    for name, sweep in (spooled.header.get("sweeps") or {}).items():
        attrs, dropped = checked_sweep_attrs(sweep.get("attrs") or {})
        if dropped:
            logger.warning("%s: sweep %r written without attributes it should not hold: %s",
                           spooled.path.name, name[:80], "; ".join(dropped)[:300])
        ledger.ensure_sweep(name, framework=sweep.get("framework", "run"), attrs=attrs)
    known: dict[str, bool] = {}  # one query a sweep
    bad: list[tuple[str, str]] = []
    keys: set[tuple[str, str]] = set()
    for batch, bad_lines in spooled.batches():  # a batch at a time: the file is never held whole
        bad += bad_lines
        records = []
        for record in batch:
            if record.sweep not in known:
                known[record.sweep] = ledger.get_sweep(record.sweep) is not None
            if known[record.sweep]:
                records.append(record)
            else:
                bad.append((record_to_json(record), f"its sweep {record.sweep!r:.80} is neither in the file nor in the ledger"))
        left_out = write_apart(ledger, records, keep_finished=True)
        bad += [(record_to_json(record), why) for record, why in left_out]
        refused = {id(record) for record, _ in left_out}
        keys |= {(r.sweep, r.trial_key) for r in records if id(r) not in refused and r.state is not TrialState.IDLE}
    spooled.close()
    written = len(keys)
    if bad:
        _set_aside(spooled.path.parent, ledger.location, spooled.path.name.removesuffix(SUFFIX),
                   [line for line, _ in bad], sorted({why for _, why in bad}), say)
    spooled.path.unlink(missing_ok=True)
    if written:
        logger.info("%d held-back trials from %s written to the ledger", written, spooled.path.name)
    return written, bool(bad)


def replay(ledger: Any, directory: Path | str | None = None) -> int:
    """Write the trials that dead processes left in spool files for ``ledger`` and delete each
    file once written. What cannot be written (not a record, a value the ledger must not hold,
    a record differing from a finished trial in the ledger) is set aside once, with a warning.

    Returns:
        How many trials were written.

    Raises:
        UnsafeSpoolError: the folder could be written by someone else (nothing is replayed).
        LedgerError: the ledger cannot be written now; the files are kept for a later try.
    """
    folder = _directory(directory)
    _check_directory(folder)
    written = aside = 0
    for spooled in _spool_files(ledger.location, folder, include_live=False):
        say = aside < FILES_SAID  # thousands of junk files: the first few named, then one line for the rest
        if isinstance(spooled, _SpoolFile):
            try:
                count, some_aside = _replay_one(ledger, spooled, say)
            finally:
                spooled.close()
            written, aside = written + count, aside + some_aside
            continue
        path, text, why = spooled
        stem = path.name.removesuffix(SUFFIX)
        aside += 1
        if not text:  # too large to read: moved aside as it is
            path.replace(path.with_name(stem + SET_ASIDE))
            if say:
                logger.warning("%s %s; set aside unread as %s%s", path, why, stem, SET_ASIDE)
        elif _set_aside(folder, ledger.location, stem, text.splitlines(), [why], say) is not None:
            path.unlink(missing_ok=True)
    if aside > FILES_SAID:
        logger.warning("and %d more held-back files set aside in %s, not written to the ledger: `audit doctor` lists "
                       "them and why, `audit doctor --drop-set-aside` deletes them", aside - FILES_SAID, folder)
    return written
