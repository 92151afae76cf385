"""Bad input gets one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

EST = ["estimate", "--hours", "1", "--watts", "300"]

BAD_INPUTS = [
    (["estimate", "--watts", "300"], 2, "Missing option '--hours'"),
    (["estimate", "--hours", "-1", "--watts", "300"], 2, "Invalid value for '--hours'"),
    (["estimate", "--hours", "abc", "--watts", "300"], 2, "Invalid value for '--hours'"),
    (["estimate", "--hours", "nan", "--watts", "300"], 2, "Invalid value for '--hours': nan is not a finite number"),
    (["estimate", "--hours", "-1", "--watts", "300"], 2, "-1 is out of range: give a number at least 0"),
    (["estimate", "--hours", "1", "--watts", "inf"], 2, "inf is not a finite number"),
    (["estimate", "--hours", "1"], 2, "give the draw of one device with --watts W, or its model with --gpu MODEL"),
    (["estimate", "--hours", "1", "--watts", "3", "--gpu", "T4"], 2, "give the draw of one device"),
    (["estimate", "--hours", "1", "--gpu", "V100"], 2, "'V100' matches devices with different TDPs"),
    (["estimate", "--hours", "1", "--gpu", "Voodoo 5"], 2, "no device in the hardware table matches 'Voodoo 5'"),
    ([*EST, "--region", "Germny"], 2, "unknown region 'Germny'. Did you mean: DE (Germany)? See `audit regions`."),
    ([*EST, "--region", "aws:mars-1"], 2, "unknown cloud region 'aws:mars-1'"),
    ([*EST, "--intensity", "545"], 2, "cannot read intensity '545'"),
    ([*EST, "--intensity", "545 g/kWh", "--region", "DE"], 2, "give --intensity or --region, not both"),
    ([*EST, "--price-per-gpu-hour", "2", "--price-per-kwh", "0.1"], 2, "give --price-per-gpu-hour or --price-per-kwh, not both"),
    ([*EST, "--price-per-kwh", "-1"], 2, "Invalid value for '--price-per-kwh'"),
    ([*EST, "--count", "0"], 2, "Invalid value for '--count'"),
    ([*EST, "--pue", "0.5"], 2, "Invalid value for '--pue'"),
    ([*EST, "--format", "xml"], 2, "Invalid value for '--format'"),
    ([*EST, "--colour", "red"], 2, "No such option: --colour"),
    (["frobnicate"], 2, "No such command 'frobnicate'"),
    (["regions", "zzzzzz"], 2, "unknown region 'zzzzzz'"),
    (["hardware", "Voodoo"], 2, "no device in the hardware table matches 'Voodoo'"),
    (["hardware", "--type", "fpga"], 2, "'fpga' is not one of gpu, cpu, tpu"),
    (["config", "set", "regoin", "DE"], 2, "unknown setting 'regoin'. Did you mean 'region'?"),
    (["config", "set", "pue", "fast"], 2, "setting pue: 'fast' is not a number"),
    (["config", "set", "price_per_kwh", "-1"], 2, "setting price_per_kwh: '-1' is not a finite number >= 0"),
    (["report", "--pue", "nan"], 2, "Invalid value for '--pue': nan is not a finite number"),
    (["trials", "s", "--state", "bogus"], 2, "unknown trial state 'bogus': use one of running, complete, pruned, failed, stopped, interrupted"),
    (["config", "set", "budget", "1,5 kg"], 2, "write decimals with a point ('1.5')"),
    (["config", "set", "budget", "20 mwh"], 2, "'mwh' is ambiguous: write mWh or MWh"),
    ([*EST, "--intensity", "0,4 kg/kWh"], 2, "write decimals with a point ('0.4')"),
    (["doctor", "--ledger", "oracle://u@h/db"], 1, "'oracle', which is not supported"),
    (["doctor", "--ledger", "postgresql://u@h:notaport/db"], 1, "cannot read ledger URL"),
]


@pytest.mark.parametrize(("args", "code", "message"), BAD_INPUTS, ids=[" ".join(a[0][:4]) for a in BAD_INPUTS])
def test_bad_input_is_one_line(audit, args: list[str], code: int, message: str) -> None:
    result = audit(*args)
    assert result.code == code
    assert result.err.startswith("error: ")
    assert result.err.count("\n") == 1, result.err
    assert message in result.err
    assert "Traceback" not in result.err + result.out


def test_bad_environment_variable(audit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITOR_REGION", "Atlantis")
    result = audit(*EST)
    assert result.code == 2
    assert result.err.startswith("error: AUDITOR_REGION: setting region: unknown region 'Atlantis'")


def test_broken_settings_file(audit, clean_environment: Path) -> None:
    (clean_environment / "auditor.toml").write_text("region = \n")
    result = audit(*EST)
    assert result.code == 2
    assert "auditor.toml: not valid TOML" in result.err and result.err.count("\n") == 1


def test_corrupt_ledger_is_reported_and_left_alone(audit, clean_environment: Path) -> None:
    ledger = clean_environment / "notes.db"
    ledger.write_text("not a database, but precious")
    result = audit("doctor", "--ledger", str(ledger))
    assert result.code == 1
    assert "is not a readable ledger" in result.out
    assert ledger.read_text() == "not a database, but precious"


def test_unexpected_errors_are_one_line_too(audit, monkeypatch: pytest.MonkeyPatch) -> None:
    import auditor.cli.tables as tables

    def broken(*_args: object, **_kwargs: object) -> list[object]:
        raise RuntimeError("boom")

    monkeypatch.setattr(tables, "search_hardware", broken)
    result = audit("hardware")
    assert result.code == 1
    assert result.err == "error: unexpected RuntimeError: boom. Rerun with AUDITOR_DEBUG=1 and report it with the traceback\n"


def test_a_budget_set_in_milliwatt_hours_stays_in_milliwatt_hours(audit, clean_environment: Path) -> None:
    """`audit config set budget` reads the amount with the same parser as the plugins."""
    assert audit("config", "set", "budget", "20 mWh").code == 0
    from auditor.config import budget_from, load_settings

    budget = budget_from(load_settings(start=clean_environment))
    assert budget is not None and budget.limit.value == pytest.approx(20e-6)
    assert budget.describe().startswith("20 mWh")


def test_doctor_still_runs_with_a_bad_setting_and_says_which(audit, clean_environment: Path) -> None:
    (clean_environment / "auditor.toml").write_text('region = "Atlantis"\nprice_per_kwh = -3\n')
    result = audit("doctor")
    assert result.code == 1 and "CPU" in result.out and "Ledger" in result.out  # it ran
    refused = [line for line in result.out.splitlines() if line.startswith("Config refused")]
    assert len(refused) == 2 and "setting region: unknown region 'Atlantis'" in refused[0]
    assert "setting price_per_kwh: -3 is not a finite number >= 0" in refused[1]
    assert audit("report").code == 2  # every other command still refuses it


@pytest.mark.parametrize(("arguments", "message"), [
    ({"n_trials": "ten"}, "n_trials must be a whole number of trials, at least 1, not 'ten'"),
    ({"n_trials": 2.5}, "n_trials must be a whole number of trials, at least 1, not 2.5"),
    ({"budget": 5}, "5 has no unit: give it as text with one, e.g. '5 kWh', '5 kg', '5 GPUh' or '$5'"),
])
def test_a_plugins_bad_argument_is_one_clear_error(clean_environment: Path, arguments: dict, message: str) -> None:
    from auditor.integrations.optuna import AuditCallback

    from auditor.errors import InvalidInputError

    with pytest.raises(InvalidInputError) as raised:
        AuditCallback(ledger=str(clean_environment / "l.db"), **arguments)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_a_name_that_starts_with_a_dash_is_told_to_follow_two_dashes(audit, tmp_path) -> None:
    result = audit("trials", "-dash", "--ledger", str(tmp_path / "l.db"))
    assert result.code == 2 and "goes after `--`: `audit trials -- -NAME`" in result.err
