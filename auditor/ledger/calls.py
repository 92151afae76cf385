"""Ledger calls a caller can stop waiting on.

A ledger server can accept a connection and never answer (a stalled server, a partition behind
a proxy that keeps the socket open): no driver timeout ends that wait on every backend. The
writer and the budget therefore make their ledger calls on a :class:`LedgerThread` and wait for
the answer only as long as they can afford; a call that hangs holds that thread, not the search,
and never the interpreter's exit (the thread is a daemon).

Example:
    >>> calls = LedgerThread("example")
    >>> calls.call(lambda: 6 * 7).result(timeout=5)
    42
    >>> calls.close()
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class LedgerThread:
    """Runs calls one at a time, in order, on one daemon thread; each gives a ``Future``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._calls: queue.Queue[tuple[Callable[[], Any], Future[Any]] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = True
        self._start()

    def _start(self) -> None:
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def is_current(self) -> bool:
        """Whether the caller runs on this thread (a call made there would wait on itself)."""
        return threading.current_thread() is self._thread

    def call(self, function: Callable[[], Any]) -> Future[Any]:
        """Run ``function`` after the calls before it; its result (or exception) in the future.
        A call after :meth:`close` starts the thread again."""
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                self._start()
            self._calls.put((function, future))
        return future

    def close(self) -> None:
        """End the thread once the calls already made are done (at once if none hangs)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._calls.put(None)

    def _run(self) -> None:
        while True:
            item = self._calls.get()
            if item is None:
                return
            function, future = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(function())
                except BaseException as exc:  # noqa: BLE001 - handed to the caller, who decides
                    future.set_exception(exc)
