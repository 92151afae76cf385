"""The auditor must never break the user's search: plugin hooks log what went wrong and go on."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

logger = logging.getLogger("auditor")
F = TypeVar("F", bound=Callable[..., Any])


def never_raise(method: F) -> F:
    """Wrap a plugin method so that an exception is logged once per method and kind, and the
    method returns None instead of raising into the framework.

    Example:
        >>> class Hook:
        ...     @never_raise
        ...     def on_result(self):
        ...         raise RuntimeError("ledger gone")
        >>> Hook().on_result() is None
        True
    """

    @functools.wraps(method)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            reported = self.__dict__.setdefault("_auditor_reported", set())
            key = (method.__name__, type(exc).__name__)
            if key not in reported:
                reported.add(key)
                logger.warning("%s failed (%s: %s); the search goes on", method.__name__.strip("_"), type(exc).__name__, exc)
            return None

    return guarded  # type: ignore[return-value]
