"""The ledger: every sweep and trial of a project in one database."""

from __future__ import annotations

from auditor.ledger.records import (
    BudgetEvent,
    EnergyReading,
    SweepRecord,
    TrialRecord,
    TrialState,
    Usage,
)
from auditor.ledger.schema import SCHEMA_VERSION
from auditor.ledger.store import Ledger

__all__ = [
    "SCHEMA_VERSION",
    "BudgetEvent",
    "EnergyReading",
    "Ledger",
    "SweepRecord",
    "TrialRecord",
    "TrialState",
    "Usage",
]
