"""``auditor.track``: record any block of code as a trial of a sweep in the ledger.

Use it for what runs outside a search: the final training run, a debug run, an evaluation.

Example:
    >>> import auditor, tempfile, os
    >>> ledger = os.path.join(tempfile.mkdtemp(), "ledger.db")
    >>> with auditor.track("final-train", sweep="final", final=True, ledger=ledger) as run:
    ...     total = sum(range(100_000))
    >>> run.record.state.value, run.record.is_final
    ('complete', True)

As a decorator, each call is one trial::

    @auditor.track("evaluate", sweep="eval")
    def evaluate(model): ...
"""

from __future__ import annotations

import os
import shlex
import time
import warnings
from contextlib import ContextDecorator
from typing import Any

from auditor.config import carbon_model, load_settings
from auditor.ledger import TrialRecord, TrialState
from auditor.ledger.writer import LedgerWriter
from auditor.meters import process_meter
from auditor.meters.sampler import Measurement, Meter
from auditor.search.records import record_for


def write_record(record: TrialRecord, ledger: str | None, framework: str) -> bool:
    """Write a record, never raising: a ledger that cannot take it now gets it later (the
    record waits in a spool file, and a warning says why).

    Returns:
        True if the record is in the ledger now.
    """
    settings = load_settings()
    writer = LedgerWriter(ledger or settings.ledger, record.sweep, framework, {"settings": carbon_model(settings).to_record()},
                          timeout_s=settings.ledger_timeout, spool_dir=settings.spool_dir)
    written = writer.write([record])
    if writer.ledger is not None:
        writer.ledger.close()
    return written


class track(ContextDecorator):  # noqa: N801 - used like a function: `with auditor.track(...)`
    """Meter a block of code and record it as one trial of ``sweep``.

    Args:
        name: what the block is (``"final-train"``); each run is its own trial.
        sweep: the sweep it belongs to (default ``runs``).
        devices: GPUs it uses: ``"auto"`` (those this process holds a CUDA context on),
            ``"all"``, or indices/UUIDs.
        ledger: ledger path or URL (default: the ``ledger`` setting).
        final: mark it as the final run that the report compares the search with.
        params: anything worth keeping with it (hyperparameters, the command).
        meter: the meter to use (default: this process's).

    After the block, ``.measurement`` and ``.record`` hold what was measured and written.
    An exception in the block is recorded as a failed trial and raised on; Ctrl-C as stopped.
    """

    def __init__(
        self,
        name: str,
        *,
        sweep: str = "runs",
        devices: Any = "auto",
        ledger: str | None = None,
        final: bool = False,
        params: dict[str, Any] | None = None,
        meter: Meter | None = None,
    ) -> None:
        self.name, self.sweep, self.devices, self.ledger = name, sweep, devices, ledger
        self.final, self.params, self._meter = final, params, meter
        self.measurement: Measurement | None = None
        self.record: TrialRecord | None = None

    def __enter__(self) -> track:
        self._active_meter = self._meter or process_meter()
        self._interval = self._active_meter.begin(gpus=self.devices)
        self._wall_start = time.time()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, _tb: Any) -> None:
        self._active_meter.end(self._interval)
        wall_end = time.time()
        if exc_type is None:
            state = TrialState.COMPLETE
        elif issubclass(exc_type, KeyboardInterrupt):
            state = TrialState.STOPPED
        else:
            state = TrialState.FAILED
        try:
            self.measurement = self._active_meter.measure(self._interval)
        except Exception as error:  # noqa: BLE001 - metering must never break the user's code
            warnings.warn(f"auditor: energy of {self.name!r} not measured: {error}", RuntimeWarning, stacklevel=2)
        self.record = record_for(
            self.measurement,
            sweep=self.sweep,
            trial_key=f"{self.name}@{self._wall_start:.6f}:{os.getpid()}",
            name=self.name,
            state=state,
            wall_start=self._wall_start,
            wall_end=wall_end,
            params=self.params,
            flags=[f"error: {exc_type.__name__}"] if state is TrialState.FAILED and exc_type else [],
            is_final=self.final,
        )
        write_record(self.record, self.ledger, framework="run")  # (an exception in the block goes on up)


def command_name(argv: list[str]) -> str:
    """A short name for a command: ``train.py --lr 0.1`` for ``python train.py --lr 0.1``."""
    script = len(argv) > 1 and os.path.basename(argv[0]).startswith("python") and not argv[1].startswith("-")
    words = argv[1:] if script else argv
    return shlex.join(words)[:255]
