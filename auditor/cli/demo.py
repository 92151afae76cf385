"""`audit demo`: a real budgeted Optuna search on the CPU, then its report."""

from __future__ import annotations

from enum import Enum

import typer

from auditor.cli.common import LEDGER_HELP, settings_with
from auditor.cli.report import build, next_steps, print_report
from auditor.errors import AuditorError
from auditor.ledger import Ledger


class Framework(str, Enum):
    optuna = "optuna"
    ray = "ray"


def demo_command(
    framework: Framework = typer.Option(Framework.optuna, "--framework", help="optuna or ray.", case_sensitive=False),
    ledger: str | None = typer.Option(None, "--ledger", help=LEDGER_HELP),
    region: str | None = typer.Option(None, "--region", help="Grid of the electricity, e.g. DE."),
) -> None:
    """Run a small budgeted search of torch models on the CPU and report what it cost."""
    extra = "ray,torch" if framework is Framework.ray else "optuna,torch"
    try:
        import torch  # noqa: F401

        from auditor.integrations.demo import run_demo, run_ray_demo

        if framework is Framework.ray:
            import ray  # noqa: F401
        else:
            import optuna  # noqa: F401
    except ImportError as exc:
        raise AuditorError(f"the demo needs {exc.name}: pip install 'hpo-auditor[{extra}]'") from None
    settings = settings_with(ledger=ledger, region=region)
    runner = run_ray_demo if framework is Framework.ray else run_demo
    result = runner(settings.ledger, region=settings.region)
    outcome = "stopped by its budget" if result.stopped_by_budget else "finished within its budget"
    print(f"\nThe search ran {result.trials} trials and {outcome}.\n")
    with Ledger.open(result.ledger) as store:
        report = build(store, settings, [result.sweep])
        print_report(report, hints=next_steps(report, settings.region))
    print(f"\nEvery trial is in {result.ledger}: `audit report` shows every sweep of this project.")
