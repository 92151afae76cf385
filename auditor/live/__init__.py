"""Live data from the network: the grid's carbon intensity hour by hour from Electricity Maps.

The only part of the auditor that opens a network connection, and only when one of its
functions is called (``audit report`` with the setting ``live_intensity = "electricitymaps"``):
nothing here connects at import, and the setting is off by default. What it fetches is kept on
disk and read from there the next time, offline.

It may import ``auditor.errors``, ``auditor.model`` (the series it returns is
:class:`auditor.model.series.IntensitySeries`, parsed and checked there) and ``auditor.data``;
nothing of the ledger, meters, reports or plugins. ``auditor.config`` and ``auditor.cli`` may
import it. HTTP is the standard library's ``urllib.request``, imported inside the function
that connects.
"""

from __future__ import annotations
