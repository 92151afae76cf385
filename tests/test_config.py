from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from auditor.config import DEFAULT_LEDGER, SETTINGS, load_settings
from auditor.errors import ConfigError, UnknownRegionError

ROOT = Path(__file__).resolve().parent.parent


def test_defaults(clean_environment: Path) -> None:
    settings = load_settings(environ={})
    assert settings.ledger == DEFAULT_LEDGER
    assert settings.region is None
    assert settings.budget_mode == "stop-new"
    assert all(settings.source_of(name) == "default" for name in SETTINGS)


def test_precedence_pyproject_auditor_toml_env_argument(clean_environment: Path) -> None:
    (clean_environment / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.auditor]\nregion = "FR"\npue = 1.2\nbudget = "5 kg"\nprice_per_kwh = 0.1\n'
    )
    (clean_environment / "auditor.toml").write_text('region = "DE"\npue = 1.3\n')
    env = {"AUDITOR_PUE": "1.4", "AUDITOR_BUDGET_MODE": "hard", "OTHER": "x"}
    settings = load_settings({"pue": 1.5}, environ=env)
    assert settings.region == "DE" and settings.source_of("region").endswith("auditor.toml")
    assert settings.budget == "5 kg" and settings.source_of("budget").endswith("pyproject.toml")
    assert settings.pue == 1.5 and settings.source_of("pue") == "argument"
    assert settings.budget_mode == "hard" and settings.source_of("budget_mode") == "AUDITOR_BUDGET_MODE"
    assert settings.price_per_kwh == 0.1


def test_project_files_are_found_from_a_subdirectory(clean_environment: Path) -> None:
    (clean_environment / "auditor.toml").write_text('ledger = "data/ledger.db"\n')
    sub = clean_environment / "src" / "deep"
    sub.mkdir(parents=True)
    settings = load_settings(environ={}, start=sub)
    assert settings.ledger == str(clean_environment / "data" / "ledger.db")


def test_a_stronger_price_replaces_the_other_kind(clean_environment: Path) -> None:
    (clean_environment / "auditor.toml").write_text("price_per_kwh = 0.12\n")
    settings = load_settings({"price_per_gpu_hour": 2.0}, environ={})
    assert settings.price_per_gpu_hour == 2.0
    assert settings.price_per_kwh is None
    with pytest.raises(ConfigError, match="keep one"):
        load_settings({"price_per_gpu_hour": 2.0, "price_per_kwh": 0.1}, environ={})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("region = ", "not valid TOML"),
        ('regoin = "DE"', "unknown setting 'regoin'. Did you mean 'region'?"),
        ('region = "Atlantis"', "setting region: unknown region 'Atlantis'"),
        ("pue = 0.5", "setting pue: PUE 0.5 is not usable"),
        ('budget = "5 parsecs"', "setting budget: unknown unit"),
        ('budget_mode = "panic"', "setting budget_mode: 'panic' is not one of warn, stop-new, hard"),
        ("price_per_kwh = -1", "setting price_per_kwh: -1 is not a finite number >= 0"),
        ("ledger_timeout = 0", "setting ledger_timeout: 0 seconds is not a timeout every ledger takes"),
        ("ledger_timeout = 1e9", "give one above 0 and at most 86400 (a day)"),
    ],
)
def test_bad_settings_file_names_the_file(clean_environment: Path, content: str, message: str) -> None:
    (clean_environment / "auditor.toml").write_text(content + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={})
    assert "auditor.toml" in str(info.value)
    assert message in str(info.value)


def test_bad_environment_variable_names_it() -> None:
    with pytest.raises(ConfigError, match="AUDITOR_PUE: setting pue"):
        load_settings(environ={"AUDITOR_PUE": "fast"})


def test_bad_argument_keeps_its_own_message() -> None:
    with pytest.raises(UnknownRegionError, match="^unknown region 'Germny'"):
        load_settings({"region": "Germny"}, environ={})


def test_default_toml_documents_every_setting_with_its_default() -> None:
    documented = tomllib.loads((ROOT / "configs" / "default.toml").read_text())
    commented = (ROOT / "configs" / "default.toml").read_text()
    for name, spec in SETTINGS.items():
        if spec.default is None:
            assert f"# {name} =" in commented, f"{name} is not documented in configs/default.toml"
        else:
            assert documented[name] == spec.default


def test_settings_file_that_is_not_utf8(clean_environment: Path) -> None:
    (clean_environment / "auditor.toml").write_bytes(b"region = \"\xff\xfe\"\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_settings(environ={})


def test_a_ledger_timeout_of_a_day_is_taken() -> None:
    assert load_settings({"ledger_timeout": 86_400}, environ={}).ledger_timeout == 86_400
