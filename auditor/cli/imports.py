"""`audit import optuna|ray|codecarbon` and `audit export codecarbon`."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from auditor.cli.common import LEDGER_HELP, number_in, progress_bar, settings_with, write_atomically
from auditor.cli.report import overrides_from
from auditor.config import carbon_model
from auditor.errors import AuditorError, InvalidInputError
from auditor.imports.importers import (
    Draw,
    Imported,
    ended_early,
    export_codecarbon,
    import_codecarbon,
    import_optuna,
    import_ray,
)
from auditor.ledger import Ledger
from auditor.model.hardware import find_hardware
from auditor.model.text import counted, shown_name

import_app = typer.Typer(help="Bring searches that ran before the auditor into the ledger.", no_args_is_help=True)
export_app = typer.Typer(help="Write the ledger in another tool's format.", no_args_is_help=True)


GPU_HELP = "GPU model the trials ran on: its TDP x the duration estimates the energy."
WATTS_HELP = "Or the mean draw of one GPU, W (of the whole machine with --count 0)."
COUNT_HELP = "GPUs per trial; 0 for trials run on CPUs (then --watts is the machine's draw)."


def _draw(gpu: str | None, watts: float | None, count: int) -> Draw:
    if watts is not None and not math.isfinite(watts):
        raise InvalidInputError(f"--watts {watts} is not a finite number")
    return Draw(find_hardware(gpu, kind="gpu") if gpu else None, watts, count)


def _done(imported: Imported, sweeps: list[str], store: Ledger, noun: str = "trial") -> None:
    where = f"Sweep {shown_name(sweeps[0])!r}" if len(sweeps) == 1 else f"{len(sweeps)} sweeps"
    typer.echo(f"{where} of {store.location}: {imported.describe(noun)}")
    missing = sum(1 for sweep in sweeps for t in store.trials(sweep) if "energy-missing" in t.flags)
    if missing and noun == "run":
        typer.echo(f"{counted(missing, 'run')} {'has' if missing == 1 else 'have'} no energy figure (their energy cells "
                   "are empty): reports count them, as 0 kWh", err=True)
    elif missing:
        typer.echo(f"{counted(missing, 'trial')} {'has' if missing == 1 else 'have'} no energy (nothing measured "
                   "them and no draw was given): import again with "
                   "--gpu MODEL or --watts W (--count 0 for CPUs) to estimate it; reports count them meanwhile", err=True)


@import_app.command("optuna")
def import_optuna_command(
    storage: str = typer.Option(..., "--storage", help="Optuna storage URL, e.g. sqlite:///optuna.db"),
    study: str = typer.Option(..., "--study", help="The study's name."),
    gpu: str | None = typer.Option(None, "--gpu", help=GPU_HELP),
    watts: float | None = typer.Option(None, "--watts", parser=number_in(0), metavar="NUMBER", help=WATTS_HELP),
    count: int = typer.Option(1, "--count", min=0, help=COUNT_HELP),
    sweep: str | None = typer.Option(None, "--sweep", help="Sweep to import into (default: the study's name)."),
    ledger: str | None = typer.Option(None, "--ledger", help=LEDGER_HELP),
) -> None:
    """Import an Optuna study's finished trials, energy estimated from durations x the draw."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise AuditorError("importing a study needs optuna: pip install 'hpo-auditor[optuna]'") from None
    draw = _draw(gpu, watts, count)
    with Ledger.open(settings_with(ledger=ledger).ledger) as store, progress_bar("Importing trials") as progress:
        imported = import_optuna(store, storage, study, draw, sweep, progress)
        _done(imported, [sweep or study], store)


@import_app.command("ray")
def import_ray_command(
    experiment: Path = typer.Argument(..., help="The Ray Tune experiment directory."),
    gpu: str | None = typer.Option(None, "--gpu", help=GPU_HELP + " For trials run without with_audit."),
    watts: float | None = typer.Option(None, "--watts", parser=number_in(0), metavar="NUMBER", help=WATTS_HELP),
    count: int = typer.Option(1, "--count", min=0, help=COUNT_HELP),
    sweep: str | None = typer.Option(None, "--sweep", help="Sweep to import into (default: the directory's name)."),
    ledger: str | None = typer.Option(None, "--ledger", help=LEDGER_HELP),
    max_t: int | None = typer.Option(None, "--max-t", min=1, help=(
        "The scheduler's max_t (ASHA, HyperBand): trials that ended before this many iterations are "
        "recorded stopped. Ray records them TERMINATED, like trials that ran to the end.")),
) -> None:
    """Import a Ray Tune experiment's trials from its directory."""
    draw = _draw(gpu, watts, count)
    with Ledger.open(settings_with(ledger=ledger).ledger) as store, progress_bar("Importing trials") as progress:
        imported = import_ray(store, experiment, draw, sweep, progress, max_t=max_t)
        _done(imported, [sweep or experiment.name], store)
    early, most = ended_early(experiment) if max_t is None else (0, 0)
    if early:
        typer.echo(f"{early} trials ended before {most} iterations, the most any trial ran, and are recorded complete: "
                   f"if a scheduler stopped them (ASHA, HyperBand), import again with --max-t {most} (its max_t) "
                   "to record them stopped", err=True)


@import_app.command("codecarbon")
def import_codecarbon_command(
    path: Path = typer.Argument(..., help="CodeCarbon's emissions.csv."),
    sweep: str | None = typer.Option(None, "--sweep", help="Sweep to import into (default: each row's project_name)."),
    ledger: str | None = typer.Option(None, "--ledger", help=LEDGER_HELP),
) -> None:
    """Import the runs of a CodeCarbon emissions.csv, one trial each."""
    with Ledger.open(settings_with(ledger=ledger).ledger) as store, progress_bar("Importing runs") as progress:
        imported, sweeps = import_codecarbon(store, path, sweep, progress)
        _done(imported, sweeps, store, noun="run")


@export_app.command("codecarbon")
def export_codecarbon_command(
    out: Path = typer.Option(Path("emissions.csv"), "--out", help="Where to write (default: emissions.csv)."),
    sweep: list[str] | None = typer.Option(None, "--sweep", help="Only this sweep (repeatable)."),
    region: str | None = typer.Option(None, "--region", help="Grid for the emissions column (default: each sweep's own)."),
    pue: float | None = typer.Option(None, "--pue", parser=number_in(1.0), metavar="NUMBER", help="PUE for the facility energy (default: each sweep's own)."),
    ledger: str | None = typer.Option(None, "--ledger", help=LEDGER_HELP),
) -> None:
    """Write the ledger's trials as CodeCarbon's emissions.csv (for its dashboard)."""
    settings = settings_with(ledger=ledger, region=region, pue=pue)
    with Ledger.open(settings.ledger, create=False) as store:
        sweep = store.named_sweeps(sweep) if sweep else sweep
        text = export_codecarbon(store, carbon_model(settings), sweep or None, overrides_from(region, pue))
    try:
        write_atomically(out, text)
    except OSError as exc:
        raise AuditorError(f"cannot write {out}: {exc.strerror}") from None
    typer.echo(f"{text.count(chr(10)) - 1} trials written to {out}")
