"""Budgets and the guard that holds a search to one.

:mod:`~auditor.budget.limits` parses and decides (a limit, a scope, a mode);
:mod:`~auditor.budget.guard` tallies what a search spent in the shared ledger and announces
each level once. May import ``auditor.model`` and ``auditor.ledger``; nothing of the plugins.

Example:
    >>> from auditor.budget import Budget
    >>> Budget.parse("5 kg").describe()
    '5 kg CO2e per sweep (stop-new)'
"""

from __future__ import annotations

from auditor.budget.limits import Action, Budget, Decision, FailMode, Mode, Scope

__all__ = ["Action", "Budget", "Decision", "FailMode", "Mode", "Scope"]
