"""The carbon and cost model: units, regions and their grids, hardware, and the formulas.

Turns energy and GPU time into facility energy, CO2e and money. Pure and offline: it imports
nothing of the auditor but ``auditor.errors`` and ``auditor.data`` (no ledger, no meters, no
framework), so every other package may use it.
"""
