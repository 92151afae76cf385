"""The ledger: every sweep and trial of a project in one database, and the spool that keeps
what the database refused until it answers again.

It stores what the meters measured (it imports ``auditor.meters.base`` for
:class:`EnergyReading`) and nothing of the model, budgets, reports or plugins: carbon and cost
are computed from its energy when they are read.
"""

from __future__ import annotations

from auditor.ledger.checks import stored_json
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
    "stored_json",
]
