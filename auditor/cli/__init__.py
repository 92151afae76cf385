"""The `audit` command.

Every error is one line on stderr (``error: ...``) and a non-zero exit: 2 for usage errors and
bad input, 1 for anything else (an unreadable ledger, a server that does not answer). Set
``AUDITOR_DEBUG=1`` to see the traceback of an unexpected error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import typer

from auditor import __version__
from auditor.cli.common import GLOBAL_OPTIONS, LEDGER_HELP
from auditor.cli.config import config_app
from auditor.cli.demo import demo_command
from auditor.cli.doctor import doctor_command
from auditor.cli.estimate import estimate_command
from auditor.cli.imports import export_app, import_app
from auditor.cli.listing import sweeps_command, trials_command
from auditor.cli.plan import plan_command
from auditor.cli.report import report_command
from auditor.cli.run import run_command
from auditor.cli.tables import hardware_command, regions_command
from auditor.errors import AuditorError, InvalidInputError

app = typer.Typer(
    name="audit",
    help="Audit the energy, carbon, GPU-hours and cost of hyperparameter searches.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hpo-auditor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ledger: str | None = typer.Option(None, "--ledger", help=LEDGER_HELP),
) -> None:
    """Audit the energy, carbon, GPU-hours and cost of hyperparameter searches."""
    GLOBAL_OPTIONS.clear()
    if ledger is not None:
        GLOBAL_OPTIONS["ledger"] = ledger


app.command("estimate")(estimate_command)
app.command("regions")(regions_command)
app.command("hardware")(hardware_command)
app.command("doctor")(doctor_command)
app.command("run", context_settings={"ignore_unknown_options": True})(run_command)
app.command("report")(report_command)
app.command("plan")(plan_command)
app.command("sweeps")(sweeps_command)
app.command("trials")(trials_command)
app.command("demo")(demo_command)
app.add_typer(config_app, name="config")
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")


def _error(message: str) -> None:
    text = " ".join(message.split())
    print(f"error: {text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `audit` command with ``argv`` (default: ``sys.argv[1:]``) and return its exit code."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=list(argv) if argv is not None else None, prog_name="audit", standalone_mode=False)
    except typer.TyperException as exc:  # click's usage errors (exit code 2) and other CLI errors
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None and exc.exit_code == 2 else ""
        if type(exc).__name__ == "NoSuchOption" and ctx is not None and not str(getattr(exc, "option_name", "")).startswith("--"):
            hint = (f" (a name that starts with '-' goes after `--`: `{ctx.command_path} -- -NAME`; "
                    f"see `{ctx.command_path} --help`)")
        _error(exc.format_message() + hint)
        return exc.exit_code
    except typer.Abort:
        _error("aborted")
        return 130
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except InvalidInputError as exc:
        _error(str(exc))
        return 2
    except AuditorError as exc:
        _error(str(exc))
        return 1
    except BrokenPipeError:
        return 1
    except Exception as exc:  # never a bare traceback; AUDITOR_DEBUG=1 shows it
        if os.environ.get("AUDITOR_DEBUG"):
            raise
        _error(f"unexpected {type(exc).__name__}: {exc}. Rerun with AUDITOR_DEBUG=1 and report it with the traceback")
        return 1
    return result if isinstance(result, int) else 0
