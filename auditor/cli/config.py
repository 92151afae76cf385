"""`audit config`: the settings in force and where each came from; `audit config set`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomlkit
import typer

from auditor.cli.common import (
    LEDGER_HELP,
    TableOrJson,
    console,
    make_table,
    print_json,
    settings_with,
    write_atomically,
)
from auditor.config import SECRETS, SETTINGS, _unknown_key, find_project_files, shown
from auditor.errors import ConfigError, InvalidInputError
from auditor.ledger.url import display

config_app = typer.Typer(help="Show or change the settings in force.", no_args_is_help=False)


@config_app.callback(invoke_without_command=True)
def show(
    ctx: typer.Context,
    ledger: str | None = typer.Option(None, "--ledger", help=LEDGER_HELP),
    output: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table or json.", case_sensitive=False),
) -> None:
    """Print every setting in force and where it came from."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_with(ledger=ledger)
    if output is TableOrJson.json:
        print_json({name: {"value": _shown(settings, name), "source": settings.source_of(name)} for name in SETTINGS})
        return
    table = make_table("setting", "value", "from", "meaning")
    for name, spec in SETTINGS.items():
        value = _shown(settings, name)
        table.add_row(name, "(unset)" if value is None else str(value), settings.source_of(name), spec.help)
    console().print(table)


def _shown(settings: Any, name: str) -> Any:
    """A setting as it may be printed: secrets hidden, and the password in a ledger URL."""
    value = shown(settings, name)
    return display(value) if name == "ledger" and isinstance(value, str) else value


def _holds_secret(name: str, value: Any) -> bool:
    return name in SECRETS or (name == "ledger" and display(str(value)) != str(value))


def _target_file() -> Path:
    """The project's auditor.toml: the nearest existing one, else one in the current directory."""
    pyproject, auditor_toml = find_project_files(Path.cwd().resolve())
    if auditor_toml is not None:
        return auditor_toml
    if pyproject is not None:
        return pyproject.parent / "auditor.toml"
    return Path.cwd() / "auditor.toml"


@config_app.command("set", context_settings={"ignore_unknown_options": True})  # a value such as -1
def set_command(
    key: str = typer.Argument(..., help="Setting name, e.g. region."),
    value: str = typer.Argument(..., help="New value, e.g. DE."),
) -> None:
    """Write a setting into the project's auditor.toml (created if needed)."""
    name = key.replace("-", "_")
    if name not in SETTINGS:
        raise _unknown_key(key, "audit config set")
    try:
        checked = SETTINGS[name].check(value)
    except InvalidInputError as exc:
        raise ConfigError(f"setting {name}: {exc}") from None
    path = _target_file()
    try:
        document = tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
    except tomlkit.exceptions.TOMLKitError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix it before changing settings") from None
    document[name] = checked
    private = any(_holds_secret(key, document[key]) for key in document if key in SETTINGS)
    write_atomically(path, tomlkit.dumps(document), private=private)
    secret = _holds_secret(name, checked)
    shown_value = "(hidden)" if name in SECRETS else repr(display(checked) if name == "ledger" else checked)
    if secret:
        note = (f" (readable by you only; keep it out of version control, or set AUDITOR_{name.upper()} in the "
                "environment instead)")
    else:
        note = " (kept readable by you only: it holds a secret)" if private else ""
    typer.echo(f"{name} = {shown_value} written to {path}{note}")
