"""The processes of a distributed search's session on one machine, outside its trials.

A Ray experiment runs more than its trials: the driver, the raylet, the GCS, the dashboard,
and every worker process before and after it runs a trial (start-up and imports). Their CPU
time and resident memory are the experiment's overhead, recorded as its idle energy, as an
Optuna search records the energy between its trials.

:class:`SessionProcesses` reads like a :class:`~auditor.meters.cpu.ProcessTree` (so the CPU-time
and memory estimates meter it), over the trees of its roots, less what each trial's process
spent while it ran a trial (a trial's own meter charges that to the trial). A process that
exited keeps the CPU time it was last read with (the raylet does not collect its workers' time
as a parent's ``children_user``), so what one spent after its last reading, at most a
sampling period's worth, and a process that lived less than a refresh are not counted.

Example:
    >>> import os
    >>> session = SessionProcesses([os.getpid()])
    >>> session.cpu_seconds() > 0, session.rss_bytes() > 0
    (True, True)
    >>> session.begin_trial(os.getpid())   # this process runs a trial from now on
    >>> session.rss_bytes()                 # its memory is the trial's while it does
    0
    >>> session.end_trial(os.getpid())
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

REFRESH_S = 1.0  # how often the trees' members are listed again (a scan of every process: about 10 ms)


class SessionProcesses:
    """CPU seconds and resident memory of the trees of ``roots``, less the trials' windows.

    Args:
        roots: the pids whose process trees are the session (on a Ray node: the raylet, and
            on the driver's node the driver too). A pid given twice, or inside another root's
            tree, counts once.
        refresh_s: how often the members are listed again.
        foreign: given a process's name, whether it and its descendants are left out unless
            it is a root (on a Ray node: ``raylet``, as another node's raylet is another
            node's session).
    """

    def __init__(self, roots: Iterable[int], refresh_s: float = REFRESH_S,
                 foreign: Callable[[str], bool] | None = None) -> None:
        import psutil

        self._psutil = psutil
        self._roots = list(dict.fromkeys(roots))
        self.foreign = foreign
        self._refresh_s = refresh_s
        self._members: dict[int, Any] = {}
        self._children: dict[int, list[Any]] = {}  # pid -> its child processes, as last listed
        self._listed_at = -float("inf")
        self._seen: dict[tuple[int, float], float] = {}  # (pid, start time) -> its CPU s as last read
        self._exited = 0.0  # CPU s of the processes that exited, as last read
        self._trial_children: set[tuple[int, float]] = set()
        self._last = 0.0
        self._trials: dict[int, float] = {}  # pid -> its CPU s when its trial began
        self._spent_in_trials = 0.0  # CPU s of trial windows that closed
        self._lock = threading.Lock()

    def add_root(self, pid: int) -> None:
        """Add ``pid``'s tree to the session (the driver's, once its node is known)."""
        with self._lock:
            if pid not in self._roots:
                self._roots.append(pid)
                self._listed_at = -float("inf")

    def _list(self) -> dict[int, Any]:
        """The roots and their descendants (one scan of every process), a tree's walk stopping
        at a process :attr:`foreign` names (another Ray node's raylet, on a machine that runs
        several nodes: that node's meter counts it)."""
        now = time.monotonic()
        if now - self._listed_at >= self._refresh_s:
            children: dict[int, list[Any]] = {}
            processes: dict[int, Any] = {}
            for process in self._psutil.process_iter(["ppid", "name"]):
                processes[process.pid] = process
                children.setdefault(process.info["ppid"], []).append(process)
            members: dict[int, Any] = {}
            stack = [processes[pid] for pid in self._roots if pid in processes]
            while stack:
                process = stack.pop()
                if process.pid in members or (process.pid not in self._roots and self._foreign(process)):
                    continue
                members[process.pid] = process
                stack.extend(children.get(process.pid, []))
            self._members, self._children, self._listed_at = members, children, now
        return self._members

    def _foreign(self, process: Any) -> bool:
        return self.foreign is not None and self.foreign(process.info.get("name") or "")

    def _cpu_of(self, process: Any) -> float | None:
        try:
            times = process.cpu_times()
        except self._psutil.Error:
            return None
        return times.user + times.system

    def _pid_cpu(self, pid: int) -> float:
        """CPU seconds of ``pid`` now, or as last read if it exited."""
        try:
            cpu = self._cpu_of(self._psutil.Process(pid))
        except self._psutil.Error:
            cpu = None
        return cpu if cpu is not None else max((c for (p, _), c in self._seen.items() if p == pid), default=0.0)

    def begin_trial(self, pid: int) -> None:
        """Process ``pid`` runs a trial from now on: its CPU time and memory are the trial's."""
        with self._lock:
            self._trials[pid] = self._pid_cpu(pid)

    def end_trial(self, pid: int) -> None:
        """Process ``pid`` ran its trial until now: what it spends from now on is the session's."""
        with self._lock:
            start = self._trials.pop(pid, None)
            if start is not None:
                self._spent_in_trials += max(0.0, self._pid_cpu(pid) - start)

    def _in_trial(self, members: dict[int, Any]) -> set[int]:
        """The pids running a trial now, with their descendants (a trial's data loaders), from
        the last listing's parentage: no scan of its own."""
        busy = {pid for pid in self._trials if pid in members}
        stack = list(busy)
        while stack:
            for child in self._children.get(stack.pop(), []):
                if child.pid in members and child.pid not in busy:
                    busy.add(child.pid)
                    stack.append(child.pid)
        return busy

    def cpu_seconds(self) -> float:
        """CPU seconds of the session's processes outside trials, those that exited included
        (as last read); never decreasing."""
        with self._lock:
            members = self._list()
            busy = self._in_trial(members) if self._trials else set()
            read: set[tuple[int, float]] = set()
            running = 0.0
            for pid, process in members.items():
                try:
                    times, key = process.cpu_times(), (pid, process.create_time())
                except self._psutil.Error:
                    continue
                cpu = times.user + times.system
                read.add(key)
                if pid in self._trials:
                    running += max(0.0, cpu - self._trials[pid])
                elif pid in busy:  # a trial's child: the trial's meter counts it, now and after it exits
                    self._trial_children.add(key)
                self._seen[key] = cpu
            for key in [key for key in self._seen if key not in read]:  # exited: kept as last read
                cpu = self._seen.pop(key)
                if key not in self._trial_children:
                    self._exited += cpu
                self._trial_children.discard(key)
            alive = sum(cpu for key, cpu in self._seen.items() if key not in self._trial_children)
            self._last = max(self._last, self._exited + alive - self._spent_in_trials - running)
            return self._last

    def rss_bytes(self) -> int:
        """Resident memory of the session's processes now, those running a trial left out."""
        with self._lock:
            members = self._list()
            busy = self._in_trial(members)
            total = 0
            for pid, process in members.items():
                if pid in busy:
                    continue
                try:
                    total += process.memory_info().rss
                except self._psutil.Error:
                    continue
            return total
