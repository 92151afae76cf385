"""Ray Tune plugin, the trial's side: what runs beside one trial in its worker process
(:class:`_TrialAudit`, made by :func:`~auditor.integrations.ray_tune_worker.with_audit`), and
:func:`usage`, the running trial's cost so far, for the trainable itself.

Like the rest of the worker's side, it loads no database code: a trial's worker imports it.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import warnings
from typing import Any

import ray

from auditor.meters import node as node_meters
from auditor.model.carbon import CarbonModel, Footprint
from auditor.search.figures import ENERGY_CLOCK, footprint_so_far, result_metrics

logger = logging.getLogger("auditor")
FIGURES_S = 0.1  # results get the figures at most this often: NVML's energy counter steps every 100 ms
ASK_S = 0.05  # a trial asks its node meter for its GPU energy at most this often
PROGRESS_S = 0.5  # a Ray Train worker tells its trial's node meter its figures this often
STALE_S = 0.2  # an answer asked for longer ago than this is asked afresh, and waited for

_RUNNING: dict[str, _TrialAudit] = {}  # trial id -> its audit, for usage(): the trials this process runs


class _TrialAudit:
    """What runs beside one trial in its worker process: its interval on the node's meter, and
    its own process's meter.

    Results get the figures at most every :data:`FIGURES_S` (the first result always; the
    driver's budget tally carries them over to the results between), and with ``energy_clock``
    every result gets ``auditor/energy_j``. GPU-seconds are counted here (the GPUs the node's
    meter gave the trial x the time since it began), CPU and memory are read here, and the GPU
    joules are the node meter's latest answer, asked again without waiting once it came: no
    round trip for calls close together, about 0.1-0.25 s behind; calls more than 0.2 s apart
    wait for a fresh answer. The same figures are :func:`usage`'s. The trial's final figures,
    which the ledger keeps, come from the node's meter when it ends: never less.
    """

    def __init__(self, trial_id: str, actor: Any, energy_clock: bool = False) -> None:
        self.trial_id = trial_id
        self.node_id = ray.get_runtime_context().get_node_id()
        self.actor = actor
        job = ray.get_runtime_context().get_job_id()
        # one round trip: the trial's interval opens, and what the driver's callback measures with
        self.gpus, self.settings = ray.get([self.actor.begin.remote(trial_id, list(ray.get_gpu_ids()), job, os.getpid()),
                                            self.actor.settings.remote(job)])
        self.began, self.began_wall = time.monotonic(), time.time()
        self.refused = self.gpus is None  # its search's budget was spent before it started
        if self.refused:
            logger.warning("trial %s not run: the budget of its search was spent before it started", trial_id)
        self.energy_clock = energy_clock or bool((self.settings or {}).get("energy_clock"))
        self.process = node_meters.TrialProcessMeter()
        self.finished = self.refused
        self.gpu_joules = 0.0
        self.workers: dict[str, float] = {}  # its Ray Train workers' figures so far, as its node meter last had them
        self.clock_j = 0.0  # the energy clock's last value: it never goes back
        self._model: CarbonModel | None = None
        self._lock = threading.Lock()
        self._asked: Any = self.actor.snapshot.remote(trial_id)
        self._asked_at = time.monotonic()
        self._patient = True
        self._figures_at = -math.inf
        if not self.refused:
            _RUNNING[trial_id] = self

    def so_far(self) -> tuple[dict[str, float], float]:
        """Joules per domain and GPU-seconds so far, measured as the final figures are and
        never more than them (the node meter's interval and this process's, both still open)."""
        with self._lock:
            now = time.monotonic()
            self._gpu_answer()
            joules = {"gpu": self.gpu_joules, **self.process.energy_so_far()}
            for domain in joules:
                joules[domain] += self.workers.get(domain, 0.0)
            self.clock_j = max(self.clock_j, sum(joules.values()))
            return joules, len(self.gpus or []) * (now - self.began) + self.workers.get("gpu_seconds", 0.0)

    def metrics(self) -> dict[str, Any]:
        """The figures so far, under the ``auditor/`` prefix; none if the last were given less
        than :data:`FIGURES_S` ago, but ``auditor/energy_j`` with the energy clock."""
        now = time.monotonic()
        if now - self._figures_at < FIGURES_S:
            return {ENERGY_CLOCK: (self.so_far(), self.clock_j)[1]} if self.energy_clock else {}
        self._figures_at = now
        joules, gpu_seconds = self.so_far()
        return {**result_metrics(joules, gpu_seconds, self.node_id), ENERGY_CLOCK: self.clock_j}

    @property
    def model(self) -> CarbonModel:
        """The carbon model of the driver's callback (the sweep's), else this worker's settings."""
        if self._model is None:
            self._model = _model_of(self.settings, self.trial_id)
        return self._model

    def _gpu_answer(self) -> None:
        """Take the node meter's answer if it came, and ask again (at most every :data:`ASK_S`).
        Calls more than :data:`STALE_S` apart (a report or ``usage()`` per epoch) would get the
        answer to the previous call's question, a whole call behind: they ask afresh and wait
        for it (one round trip, about a millisecond, against calls at least 0.2 s apart)."""
        now = time.monotonic()
        if now - self._asked_at > STALE_S and self._patient:
            self._asked, self._asked_at = self.actor.snapshot.remote(self.trial_id), now
            if not ray.wait([self._asked], timeout=1.0)[0]:
                self._patient = False  # a meter this slow is not waited for again
        asked = self._asked
        if asked is not None:
            if not ray.wait([asked], timeout=0)[0]:
                return
            self._asked = None  # a failed answer is not waited for again
            try:
                answer = ray.get(asked)
                self.gpu_joules = max(self.gpu_joules, float(answer["gpu_energy_j"]))
                workers = answer.get("workers", {})
                self.workers = {key: max(self.workers.get(key, 0.0), float(value)) for key, value in workers.items()}
            except Exception as exc:  # noqa: BLE001 - the last answer stands
                logger.debug("GPU energy of trial %s not read: %s", self.trial_id, exc)
        if time.monotonic() - self._asked_at >= ASK_S:
            self._asked, self._asked_at = self.actor.snapshot.remote(self.trial_id), time.monotonic()

    def finish(self, finished: bool) -> None:
        """The trial's code returned (``finished``) or raised: hand its final figures over."""
        _RUNNING.pop(self.trial_id, None)
        if self.finished:
            return
        self.finished = True
        worker: dict[str, Any] = {**self.process.finish(), "finished": finished, "pid": os.getpid()}
        try:
            ray.get(self.actor.end.remote(self.trial_id, worker), timeout=30)
        except Exception as exc:  # noqa: BLE001 - the trial's own outcome matters more
            logger.warning("final figures of trial %s not handed over: %s", self.trial_id, exc)


class _WorkerAudit:
    """What runs beside one Ray Train worker of an audited Tune trial, in the worker's process:
    its interval on its own node's meter (its GPUs), its process's meter (CPU and memory), and a
    thread telling the trial's node meter its figures so far every :data:`PROGRESS_S`, for the
    trial's results, :func:`usage` and the budget. When it ends, its final figures go to its
    node's meter, and the trial's final figures (``NodeMeter.final``) add them: once.

    Args:
        trial_id: the Tune trial the worker is a part of.
        trial_node: the node the trial's own process runs on.
        actor: this node's meter.
        trial_actor: the meter of the trial's node.
    """

    def __init__(self, trial_id: str, trial_node: str, actor: Any, trial_actor: Any) -> None:
        context = ray.get_runtime_context()
        self.trial_id, self.node_id, self.actor, self.trial_actor = trial_id, context.get_node_id(), actor, trial_actor
        self.key = f"{trial_id}/worker/{self.node_id}/{os.getpid()}/{time.time_ns()}"
        calls = [actor.begin.remote(self.key, list(ray.get_gpu_ids()), context.get_job_id(), os.getpid(), trial_id)]
        if self.node_id != trial_node:
            calls.append(trial_actor.note_part.remote(trial_id, self.node_id))
        self.gpus = ray.get(calls, timeout=30)[0] or []
        self.began = time.monotonic()
        self.process = node_meters.TrialProcessMeter()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._tell_progress, name="auditor-worker-progress", daemon=True)
        self._thread.start()

    def so_far(self) -> dict[str, float]:
        """Its joules per domain and GPU-seconds so far."""
        gpu = ray.get(self.actor.snapshot.remote(self.key), timeout=10)["gpu_energy_j"]
        return {"gpu": float(gpu), **self.process.energy_so_far(),
                "gpu_seconds": len(self.gpus) * (time.monotonic() - self.began)}

    def _tell_progress(self) -> None:
        while not self._done.wait(PROGRESS_S):
            try:
                self.trial_actor.report_progress.remote(self.trial_id, self.key, self.so_far())
            except Exception as exc:  # noqa: BLE001 - the last answer stands
                logger.debug("progress of a worker of trial %s not told: %s", self.trial_id, exc)

    def finish(self, finished: bool) -> None:
        """The worker's loop returned (``finished``) or raised: hand its final figures over."""
        self._done.set()
        self._thread.join(timeout=5)
        worker: dict[str, Any] = {**self.process.finish(), "finished": finished, "pid": os.getpid()}
        try:
            ray.get(self.actor.end.remote(self.key, worker), timeout=30)
        except Exception as exc:  # noqa: BLE001 - the trial's own outcome matters more
            logger.warning("final figures of a worker of trial %s not handed over: %s", self.trial_id, exc)


def running_trial() -> tuple[str, str] | None:
    """The audited trial running in this thread (its id and node), or None: what a Ray Train
    loop wrapped by ``with_audit`` and handed to a trainer here is a part of."""
    running = dict(_RUNNING)
    if len(running) > 1:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from ray import tune

                trial_id = tune.get_context().get_trial_id()
        except Exception:  # noqa: BLE001
            return None
        running = {key: audit for key, audit in running.items() if key == trial_id}
    if len(running) != 1:
        return None
    [audit] = running.values()
    return audit.trial_id, audit.node_id


def _model_of(settings: dict[str, Any] | None, trial_id: str) -> CarbonModel:
    model = (settings or {}).get("model")
    if isinstance(model, CarbonModel):  # the driver's own: an hourly series travels with it, not its path
        return model
    logger.warning("no AuditLoggerCallback told trial %s its carbon model: CO2e and cost from this "
                   "worker's settings (AUDITOR_REGION, auditor.toml)", trial_id)
    try:
        from auditor.config import carbon_model, load_settings

        return carbon_model(load_settings())
    except Exception as exc:  # noqa: BLE001
        logger.warning("settings not read (%s): the world average", exc)
        return CarbonModel()


def usage() -> Footprint:
    """What the running trial has cost so far: IT and facility energy, CO2e and GPU-hours (and
    cost with a price), measured as its ledger record will be and never more than it.

    Call it inside a trainable wrapped by :func:`with_audit` (a function, or a
    ``tune.Trainable``'s ``step``), to report cost as a second metric or stop on it. CO2e and
    cost use the carbon model of the experiment's ``AuditLoggerCallback`` (region, PUE, price),
    which its meters hand every trial. No round trip: the GPU energy is the node meter's last
    answer (about 0.1 s behind), the CPU and memory this process's.

    Example::

        def train_fn(config):
            for epoch in range(10):
                loss = ...
                tune.report({"loss": loss, "co2e_kg": usage().co2e_kg})

    Raises:
        ValueError: not inside a trial running under :func:`with_audit`.
    """
    running = dict(_RUNNING)
    if len(running) > 1:  # several trials in this process: the one of this thread's session
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from ray import tune

            trial_id = tune.get_context().get_trial_id()
        running = {key: audit for key, audit in running.items() if key == trial_id}
    if len(running) != 1:
        raise ValueError("usage() is for a Ray Tune trial running under with_audit(trainable): "
                         "none runs here (wrap the trainable with with_audit, and call usage() inside it)")
    [audit] = running.values()
    joules, gpu_seconds = audit.so_far()
    return footprint_so_far(joules, gpu_seconds, audit.model, (audit.began_wall, time.time()))


__all__ = ["FIGURES_S", "usage"]
