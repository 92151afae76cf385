"""auditor: the energy, carbon, GPU-hours and cost of every trial of a hyperparameter search.

Importing the package is cheap and touches no network and no hardware; the names below are
loaded on first use.

What the auditor says during a search goes to the ``auditor`` logger: warnings (a budget's 50 and
80 % marks, its stop, a meter that fails) and, at INFO, the cost forecasts. Where the program
configured no logging, they print on stderr as ``auditor: ...`` (Python's last-resort handler,
with our name); once it has (``logging.basicConfig``, a framework's set-up), its handlers show
them in its format, and ``logging.getLogger("auditor").setLevel(logging.INFO)`` adds the forecasts.

Example:
    >>> import auditor
    >>> auditor.Budget.parse("5 kg").describe()
    '5 kg CO2e per sweep (stop-new)'
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

__version__ = "0.1.0"


class _LastResort(logging.Handler):
    """Prints the auditor's records as ``auditor: message`` on stderr only while the program has
    no logging of its own (no handler on the root logger); once it has, its handlers show them."""

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return
        try:
            sys.stderr.write(f"auditor: {record.getMessage()}\n")
        except Exception:  # noqa: BLE001 - never break the search over a message
            self.handleError(record)


if not any(isinstance(h, _LastResort) for h in logging.getLogger("auditor").handlers):
    logging.getLogger("auditor").addHandler(_LastResort())

_EXPORTS = {
    "Budget": "auditor.budget.limits",
    "CarbonModel": "auditor.model.carbon",
    "Footprint": "auditor.model.carbon",
    "Price": "auditor.model.carbon",
    "Ledger": "auditor.ledger",
    "TrialRecord": "auditor.ledger",
    "EnergyReading": "auditor.ledger",
    "resolve_region": "auditor.model.regions",
    "load_settings": "auditor.config",
    "AuditorError": "auditor.errors",
    "track": "auditor.tracking",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'auditor' has no attribute {name!r}")
