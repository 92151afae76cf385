"""What every search plugin shares: a trial's record, its heartbeats, the background writer,
the budget decisions and reservations, and the figures a user sees while a search runs.

The plugins (``auditor.integrations``) only turn a framework's events into calls here. May
import ``auditor.meters``, ``auditor.ledger``, ``auditor.model`` and ``auditor.budget``; never
optuna or ray.
"""
