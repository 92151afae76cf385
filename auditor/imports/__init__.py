"""Searches that ran before the auditor (Optuna storages, Ray Tune experiment folders,
CodeCarbon files) into the ledger, and the ledger out to CodeCarbon's format.

May import ``auditor.model`` and ``auditor.ledger``. It reads the frameworks' own records, so
it is the one core package that imports optuna, and only inside the function that needs it.
"""
