"""Where the Ray Tune plugin meets Ray's control of the experiment: the stopper that ends it
for the budget, and the experiment's scheduler, found rather than asked for twice.

ASHA and HyperBand end a trial that reaches their ``max_t`` as they end one they cut short, and
Ray reports both alike (``TERMINATED``); the ledger tells them apart only knowing the scheduler's
``time_attr`` and ``max_t``. A user writes the scheduler once, in ``tune.TuneConfig``; Ray does
not hand it to callbacks, but calls their ``setup`` from its ``TuneController``, whose
``scheduler_alg`` is it. :func:`running_scheduler` reads it there, and returns None (the caller
then records those trials ``stopped``, as before) if a Ray version calls ``setup`` otherwise:
``tests/integrations_tests/test_ray_tune.py`` fails that day.

Example:
    >>> running_scheduler() is None  # not called from Ray Tune's set-up
    True
"""

from __future__ import annotations

import inspect
from typing import Any

from ray.tune import Stopper

FRAMES_UP = 8  # how far up the stack Ray's controller calls the callbacks' setup from


def running_scheduler() -> Any | None:
    """The scheduler of the Ray Tune experiment whose callbacks are being set up, or None."""
    frame = inspect.currentframe()
    try:
        for _ in range(FRAMES_UP):
            frame = frame.f_back if frame is not None else None
            if frame is None:
                return None
            controller = frame.f_locals.get("self")
            if type(controller).__name__ == "TuneController" and hasattr(controller, "scheduler_alg"):
                scheduler = controller.scheduler_alg
                return None if type(scheduler).__name__ == "FIFOScheduler" else scheduler
        return None
    finally:
        del frame


class AuditStopper(Stopper):
    """Stops a trial once a hard budget is spent, and the experiment once any budget is."""

    def __init__(self, audit: Any) -> None:
        self._audit = audit

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if self._audit.hard_stopped:
            self._audit.stopped_by_budget_ids.add(trial_id)
            return True
        return False

    def stop_all(self) -> bool:
        return self._audit.stopped_by_budget
