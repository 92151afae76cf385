"""`audit import optuna|ray|codecarbon` and `audit export codecarbon`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from auditor.cli.common import LEDGER_HELP, settings_with, write_atomically
from auditor.config import carbon_model
from auditor.errors import AuditorError
from auditor.imports.importers import (
    export_codecarbon,
    import_codecarbon,
    import_optuna,
    import_ray,
)
from auditor.ledger import Ledger
from auditor.model.hardware import find_hardware

import_app = typer.Typer(help="Bring searches that ran before the auditor into the ledger.", no_args_is_help=True)
export_app = typer.Typer(help="Write the ledger in another tool's format.", no_args_is_help=True)


@contextmanager
def _progress(what: str) -> Iterator[Callable[[int, int], None]]:
    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), transient=True) as progress:
        task = progress.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def _done(count: int, sweep: str, store: Ledger) -> None:
    typer.echo(f"{count} new trials imported into sweep {sweep!r} of {store.location}")


@import_app.command("optuna")
def import_optuna_command(
    storage: str = typer.Option(..., "--storage", help="Optuna storage URL, e.g. sqlite:///optuna.db"),
    study: str = typer.Option(..., "--study", help="The study's name."),
    gpu: str = typer.Option(..., "--gpu", help="GPU model the trials ran on (its TDP estimates the energy)."),
    count: int = typer.Option(1, "--count", min=1, help="GPUs per trial."),
    sweep: str | None = typer.Option(None, "--sweep", help="Sweep to import into (default: the study's name)."),
    ledger: str | None = typer.Option(None, "--ledger", help=LEDGER_HELP),
) -> None:
    """Import an Optuna study's finished trials, energy estimated from durations x TDP."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise AuditorError("importing a study needs optuna: pip install 'hpo-auditor[optuna]'") from None
    spec = find_hardware(gpu, kind="gpu")
    with Ledger.open(settings_with(ledger=ledger).ledger) as store, _progress("Importing trials") as progress:
        count_new = import_optuna(store, storage, study, spec, count, sweep, progress)
        _done(count_new, sweep or study, store)


@import_app.command("ray")
def import_ray_command(
    experiment: Path = typer.Argument(..., help="The Ray Tune experiment directory."),
    gpu: str | None = typer.Option(None, "--gpu", help="GPU model, to estimate energy for trials run without with_audit."),
    count: int = typer.Option(1, "--count", min=1, help="GPUs per trial."),
    sweep: str | None = typer.Option(None, "--sweep", help="Sweep to import into (default: the directory's name)."),
    ledger: str | None = typer.Option(None, "--ledger", help=LEDGER_HELP),
) -> None:
    """Import a Ray Tune experiment's trials from its directory."""
    spec = find_hardware(gpu, kind="gpu") if gpu else None
    with Ledger.open(settings_with(ledger=ledger).ledger) as store, _progress("Importing trials") as progress:
        count_new = import_ray(store, experiment, spec, count, sweep, progress)
        _done(count_new, sweep or experiment.name, store)


@import_app.command("codecarbon")
def import_codecarbon_command(
    path: Path = typer.Argument(..., help="CodeCarbon's emissions.csv."),
    sweep: str | None = typer.Option(None, "--sweep", help="Sweep to import into (default: each row's project_name)."),
    ledger: str | None = typer.Option(None, "--ledger", help=LEDGER_HELP),
) -> None:
    """Import the runs of a CodeCarbon emissions.csv, one trial each."""
    with Ledger.open(settings_with(ledger=ledger).ledger) as store, _progress("Importing runs") as progress:
        count_new = import_codecarbon(store, path, sweep, progress)
        typer.echo(f"{count_new} new runs imported from {path} into {store.location}")


@export_app.command("codecarbon")
def export_codecarbon_command(
    out: Path = typer.Option(Path("emissions.csv"), "--out", help="Where to write (default: emissions.csv)."),
    sweep: list[str] | None = typer.Option(None, "--sweep", help="Only this sweep (repeatable)."),
    region: str | None = typer.Option(None, "--region", help="Grid for the emissions column."),
    pue: float | None = typer.Option(None, "--pue", min=1.0, help="PUE for the facility energy."),
    ledger: str | None = typer.Option(None, "--ledger", help=LEDGER_HELP),
) -> None:
    """Write the ledger's trials as CodeCarbon's emissions.csv (for its dashboard)."""
    settings = settings_with(ledger=ledger, region=region, pue=pue)
    with Ledger.open(settings.ledger, create=False) as store:
        known = {s.name for s in store.sweeps()}
        missing = [name for name in sweep or [] if name not in known]
        if missing:
            raise AuditorError(f"no sweep called {missing[0]!r} in {store.location}: see `audit sweeps`")
        text = export_codecarbon(store, carbon_model(settings), sweep or None)
    try:
        write_atomically(out, text)
    except OSError as exc:
        raise AuditorError(f"cannot write {out}: {exc.strerror}") from None
    typer.echo(f"{text.count(chr(10)) - 1} trials written to {out}")
