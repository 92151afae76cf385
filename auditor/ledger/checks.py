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
    auditor.errors.InvalidRecordError: trial 1 of sweep 's': gpu_seconds -1.0 is not a finite number from 0 to 1e+12
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import fields, replace
from typing import Any

from auditor.errors import InvalidRecordError
from auditor.ledger.records import NAME_LIMIT, EnergyReading, TrialRecord, TrialState
from auditor.ledger.schema import ENERGY_DOMAINS, RUN_LIMIT

logger = logging.getLogger("auditor")

TEXT_LIMIT = NAME_LIMIT  # the ledger's name columns
METHOD_LIMIT = 16  # the ledger's energy method columns
_FIELDS = frozenset(f.name for f in fields(TrialRecord))

# The ranges a stored value must be in: what a trial can be, with room to spare, and what every
# backend's columns hold (a 64-bit integer, a double).
LATEST_TIME = 253_402_300_799.0  # 9999-12-31 23:59:59 UTC, as seconds since 1970
MOST_SECONDS = 1e12  # GPU-seconds of one trial: 10,000 GPUs for three years is 1e12
MOST_JOULES = 3.6e15  # one TWh for one trial: more than the largest cluster draws in a year
LARGEST_NUMBER = 2**63 - 1  # a trial's number: the ledger's 64-bit integer column
MOST_DEVICES = 65_536  # the GPUs one trial lists


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite(value: Any) -> bool:
    """A number a double holds, and not NaN or infinite (a 401-digit integer is not).

    Example:
        >>> is_finite(3), is_finite(float("nan")), is_finite(10**400), is_finite("3")
        (True, False, False, False)
    """
    if not _is_number(value):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _amount(name: str, value: Any, most: float) -> str | None:
    if not is_finite(value) or not 0 <= value <= most:
        return f"{name} {value!r:.40} is not a finite number from 0 to {most:g}"
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
        _amount("start_time", record.start_time, LATEST_TIME),
        _amount("gpu_seconds", record.gpu_seconds, MOST_SECONDS),
        _amount("recorded_at", record.recorded_at, LATEST_TIME),
        None if record.end_time is None else _amount("end_time", record.end_time, LATEST_TIME),
    ]
    if record.number is not None and (not isinstance(record.number, int) or isinstance(record.number, bool)
                                      or not 0 <= record.number <= LARGEST_NUMBER):
        found.append(f"number {record.number!r:.40} is not an integer from 0 to 2**63 - 1")
    if not isinstance(record.params, dict) or not all(isinstance(k, str) for k in record.params):
        found.append("params is not a mapping of names to values")
    if record.objective is not None and (
        not isinstance(record.objective, list) or not all(_is_number(v) for v in record.objective)
    ):
        found.append(f"objective {record.objective!r:.80} is not a list of numbers")
    if not isinstance(record.devices, list) or not all(isinstance(d, dict) for d in record.devices):
        found.append("devices is not a list of mappings")
    elif len(record.devices) > MOST_DEVICES:
        found.append(f"devices lists {len(record.devices):,} GPUs, more than the {MOST_DEVICES:,} one trial may have")
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
            found.append(_amount(f"{domain} energy", reading.joules, MOST_JOULES))
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
    texts = {name: _without_nul(getattr(record, name)) for name in ("name", "host", "run")}
    if any(texts[name] is not getattr(record, name) for name in texts):
        record = replace(record, **texts)  # type: ignore[arg-type]
    if record.objective is not None and not all(is_finite(v) for v in record.objective):
        return replace(record, objective=None, flags=[*record.flags, "objective-not-finite"])
    return record


def _without_nul(text: str | None) -> str | None:
    """A NUL (which PostgreSQL's text cannot hold) kept as the four characters ``\\x00``, as
    :func:`~auditor.ledger.records.fit_name` keeps it in names."""
    return text.replace("\x00", "\\x00") if text is not None and "\x00" in text else text


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


# -- a sweep's attributes -------------------------------------------------------------------------

BUDGET_METRICS = ("co2e_kg", "energy_kwh", "gpu_hours", "cost_usd")  # auditor.model.units.Metric's values
BUDGET_SCOPES = ("sweep", "project")
MOST_PLANNED = 10**9  # a search's planned trials


def _budget_problem(budget: Any) -> str | None:
    if budget is None:
        return None
    if not isinstance(budget, dict):
        return f"budget {budget!r:.40} is not a mapping"
    if budget.get("metric") not in BUDGET_METRICS:
        return f"budget metric {budget.get('metric')!r:.40} is not one of {', '.join(BUDGET_METRICS)}"
    limit = budget.get("limit")
    if not is_finite(limit) or limit is None or limit <= 0:
        return f"budget limit {limit!r:.40} is not a finite number above 0"
    if budget.get("scope") not in BUDGET_SCOPES:
        return f"budget scope {budget.get('scope')!r:.40} is not sweep or project"
    for name in ("text", "mode"):
        if not isinstance(budget.get(name, ""), str):
            return f"budget {name} {budget.get(name)!r:.40} is not a text"
    return None


def _planned_problem(planned: Any) -> str | None:
    if planned is None or (isinstance(planned, int) and not isinstance(planned, bool) and 0 < planned <= MOST_PLANNED):
        return None
    return f"planned_trials {planned!r:.40} is not a whole number from 1 to {MOST_PLANNED:,}"


def _directions_problem(directions: Any) -> str | None:
    if directions is None or (isinstance(directions, list) and all(d in ("minimize", "maximize") for d in directions)):
        return None
    return f"directions {directions!r:.40} is not a list of minimize and maximize"


_SWEEP_CHECKS = {"budget": _budget_problem, "planned_trials": _planned_problem, "directions": _directions_problem}


def checked_sweep_attrs(attrs: Any) -> tuple[dict[str, Any], list[str]]:
    """A sweep's attributes as reports may read them, and what was dropped: a ``budget``,
    ``planned_trials`` or ``directions`` that is not what a search writes is left out with its
    reason (the rest of the sweep stays); attributes that are not a mapping are all dropped.

    Example:
        >>> checked_sweep_attrs({"planned_trials": 50, "budget": {"metric": "kWh", "limit": 1}})
        ({'planned_trials': 50}, ["budget metric 'kWh' is not one of co2e_kg, energy_kwh, gpu_hours, cost_usd"])
    """
    if not isinstance(attrs, dict):
        return {}, [f"attributes {attrs!r:.40} are not a mapping"]
    kept, dropped = dict(attrs), []
    for key, problem_of in _SWEEP_CHECKS.items():
        problem = problem_of(attrs.get(key))
        if problem:
            dropped.append(problem)
            del kept[key]
    return kept, dropped


# -- reading back what a damaged ledger holds -----------------------------------------------------

_said: set[str] = set()


def warn_once(message: str) -> None:
    """Say ``message`` (a row that does not read) once in this process, however often it is read."""
    if message not in _said:
        _said.add(message)
        logger.warning("%s", message)


def stored_json(text: Any, kind: type, where: str) -> Any:
    """A JSON column as the ledger holds it: a ``kind`` (``list`` or ``dict``), or an empty one
    with one warning naming ``where`` when its bytes no longer read as one (a damaged file).

    Example:
        >>> stored_json('[{"model": "H100"}]', list, "x"), stored_json('[{"mod', list, "trial 3 of 's'")
        ([{'model': 'H100'}], [])
    """
    if text is None or text == "":
        return kind()
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError) as exc:
        warn_once(f"{where}: a stored value does not read ({type(exc).__name__}); the ledger file may be damaged: "
                  f"`audit doctor` checks it")
        return kind()
    if value is None:
        return kind()
    if not isinstance(value, kind):
        warn_once(f"{where}: a stored value is not a {kind.__name__}; the ledger file may be damaged: `audit doctor` checks it")
        return kind()
    return value
