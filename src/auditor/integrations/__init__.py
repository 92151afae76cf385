"""Plugins for hyperparameter-search frameworks, imported as ``auditor.integrations.*``.

The source lives in the project's top-level ``integrations/`` folder and ships as
``auditor.integrations`` (an import package called plain ``integrations`` would collide with an
unrelated package of that name on PyPI). The Optuna and Ray Tune plugins land here as
``auditor.integrations.optuna`` and ``auditor.integrations.ray_tune``; nothing here imports a
framework until its plugin module is imported.
"""

from __future__ import annotations
