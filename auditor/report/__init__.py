"""The report of a ledger: its figures (:mod:`~auditor.report.build`), its formats (table,
markdown, csv, statement, html) and plots.

Reads the ledger and the model; imports nothing of meters, budgets, searches or frameworks.
"""
