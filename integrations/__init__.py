"""Plugins for hyperparameter-search frameworks: ``auditor.integrations.optuna`` and
``auditor.integrations.ray_tune``.

They are thin adapters: each turns its framework's events into the core's calls. Nothing here
imports a framework until its plugin module is imported.
"""

from __future__ import annotations
