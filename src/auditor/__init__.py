"""auditor: the energy, carbon, GPU-hours and cost of every trial of a hyperparameter search.

Importing the package is cheap and touches no network and no hardware; the names below are
loaded on first use.

Example:
    >>> import auditor
    >>> auditor.Budget.parse("5 kg").describe()
    '5 kg CO2e per sweep (stop-new)'
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

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
