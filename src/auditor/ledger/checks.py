"""What the ledger may store: every value of a trial record checked before it is queued.

One bad record must never stop the others: :func:`checked` says what is wrong with a record
(so that it is set aside alone) and :func:`record_from_json` reads one from a held-back file
whatever that file holds, raising only :class:`InvalidRecordError`.

Example:
    >>> from auditor.ledger.records import TrialRecord
    >>> checked(TrialRecord(sweep="s", trial_key="1", state="complete", start_time=0.0,
    ...                     objective=[float("inf")])).flags
    ['objective-not-finite']
    >>> checked(TrialRecord(sweep="s", trial_key="1", state="complete", start_time=0.0, gpu_seconds=-1.0))
    Traceback (most recent call last):
    ...
    auditor.errors.InvalidRecordError: trial 1 of sweep 's': gpu_seconds -1.0 is not a finite number >= 0
"""

from __future__ import annotations

import json
import math
from dataclasses import fields, replace
from typing import Any

from auditor.errors import InvalidRecordError
from auditor.ledger.records import NAME_LIMIT, EnergyReading, TrialRecord, TrialState
from auditor.ledger.schema import ENERGY_DOMAINS, RUN_LIMIT

TEXT_LIMIT = NAME_LIMIT  # the ledger's name columns
METHOD_LIMIT = 16  # the ledger's energy method columns
_FIELDS = frozenset(f.name for f in fields(TrialRecord))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _amount(name: str, value: Any) -> str | None:
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        return f"{name} {value!r} is not a finite number >= 0"
    return None


def _text(name: str, value: Any, optional: bool = False, key: bool = False) -> str | None:
    """A text column; ``key``: a sweep's name or a trial's key, which may be empty or of any
    length (the ledger stores a long one cut and hashed, :func:`~auditor.ledger.records.fit_name`)."""
    if value is None and optional:
        return None
    if key:
        return None if isinstance(value, str) else f"{name} {value!r:.80} is not a text"
    if not isinstance(value, str) or (not value and not optional) or len(value) > TEXT_LIMIT:
        return f"{name} {value!r:.80} is not a text of {0 if optional else 1} to {TEXT_LIMIT} characters"
    return None


def _run(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= RUN_LIMIT:
        return f"run {value!r:.80} is not a text of 1 to {RUN_LIMIT} characters"
    return None


def _problems(record: TrialRecord) -> list[str]:
    found = [
        _text("sweep", record.sweep, key=True), _text("trial_key", record.trial_key, key=True),  # study_name="" too
        _text("name", record.name, True),
        _run(record.run),
        _text("host", record.host),
        _amount("start_time", record.start_time), _amount("gpu_seconds", record.gpu_seconds),
        _amount("recorded_at", record.recorded_at),
        None if record.end_time is None else _amount("end_time", record.end_time),
    ]
    if record.number is not None and (not isinstance(record.number, int) or isinstance(record.number, bool)):
        found.append(f"number {record.number!r:.40} is not an integer")
    if not isinstance(record.params, dict) or not all(isinstance(k, str) for k in record.params):
        found.append("params is not a mapping of names to values")
    if record.objective is not None and (
        not isinstance(record.objective, list) or not all(_is_number(v) for v in record.objective)
    ):
        found.append(f"objective {record.objective!r:.80} is not a list of numbers")
    if not isinstance(record.devices, list) or not all(isinstance(d, dict) for d in record.devices):
        found.append("devices is not a list of mappings")
    if not isinstance(record.flags, list) or not all(isinstance(f, str) for f in record.flags):
        found.append("flags is not a list of texts")
    for name in ("is_final", "stopped_by_budget"):
        if not isinstance(getattr(record, name), bool):
            found.append(f"{name} is not true or false")
    if not isinstance(record.energy, dict):
        found.append("energy is not a mapping of domains to readings")
    else:
        for domain, reading in record.energy.items():
            if domain not in ENERGY_DOMAINS or not isinstance(reading, EnergyReading):
                found.append(f"energy {domain!r:.20} is not a reading of {', '.join(ENERGY_DOMAINS)}")
                continue
            found.append(_amount(f"{domain} energy", reading.joules))
            if not isinstance(reading.method, str) or not 0 < len(reading.method) <= METHOD_LIMIT:
                found.append(f"{domain} energy method {reading.method!r:.20} is not a text of 1 to {METHOD_LIMIT} characters")
    return [problem for problem in found if problem]


def checked(record: TrialRecord) -> TrialRecord:
    """``record`` as the ledger may store it.

    Non-finite objective values (an objective that returned ``inf``) are dropped and the trial
    flagged ``objective-not-finite``: its energy is real and is kept.

    Raises:
        InvalidRecordError: a value the ledger must not store; the message names the trial.
    """
    problems = _problems(record)
    if problems:
        raise InvalidRecordError(f"trial {record.trial_key!s:.60} of sweep {record.sweep!r:.80}: {'; '.join(problems)}")
    if record.objective is not None and not all(math.isfinite(v) for v in record.objective):
        return replace(record, objective=None, flags=[*record.flags, "objective-not-finite"])
    return record


def record_from_json(line: str) -> TrialRecord:
    """A checked record from one line of a held-back file.

    Raises:
        InvalidRecordError: the line is not a record the ledger may store (whatever it holds).
    """
    try:
        data = json.loads(line)
        if not isinstance(data, dict) or not _FIELDS.issuperset(data) or not isinstance(data.get("energy", {}), dict):
            raise InvalidRecordError("not a trial record")
        data["energy"] = {domain: EnergyReading(**reading) for domain, reading in data.get("energy", {}).items()}
        data["state"] = TrialState(data.get("state"))
        return checked(TrialRecord(**data))
    except InvalidRecordError:
        raise
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidRecordError(f"not a trial record ({type(exc).__name__}: {exc})"[:200]) from None


def record_to_json(record: TrialRecord) -> str:
    """One line of a held-back file (what :func:`record_from_json` reads back)."""
    data = {name: getattr(record, name) for name in _FIELDS}
    data["state"] = TrialState(record.state).value
    data["energy"] = {domain: {"joules": r.joules, "method": r.method} for domain, r in record.energy.items()}
    return json.dumps(data, default=str)
