"""Hostile input: the parsers and the CLI fuzzed with hypothesis, and the code searched for
what must never be built from user data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.budget.limits import Budget
from auditor.cli import main
from auditor.errors import AuditorError, InvalidInputError
from auditor.model.regions import resolve_region
from auditor.model.units import parse_intensity

ROOT = Path(__file__).resolve().parents[2]
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


@given(texts)
def test_region_parser_never_crashes(text: str) -> None:
    try:
        region = resolve_region(text)
    except InvalidInputError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert region.g_co2e_per_kwh >= 0


@given(texts)
def test_intensity_parser_never_crashes(text: str) -> None:
    try:
        assert parse_intensity(text) >= 0
    except InvalidInputError as exc:
        assert "\n" not in str(exc)


@given(texts, st.sampled_from(["sweep", "project", "galaxy", ""]), st.sampled_from(["warn", "hard", "stop-new", "x"]))
def test_budget_parser_never_crashes(text: str, scope: str, mode: str) -> None:
    try:
        budget = Budget.parse(text, scope=scope, mode=mode)
    except InvalidInputError as exc:
        assert "\n" not in str(exc)
    else:
        assert budget.limit.value > 0


COMMANDS = ["estimate", "regions", "hardware", "report", "sweeps", "trials", "config", "doctor", "import", "export"]
OPTIONS = ["--hours", "--watts", "--gpu", "--count", "--pue", "--region", "--intensity", "--format", "--ledger",
           "--sweep", "--since", "--price-per-kwh", "--price-per-gpu-hour", "--sort", "--state", "--limit"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=st.lists(st.one_of(st.sampled_from(COMMANDS), st.sampled_from(OPTIONS), texts), max_size=6))
def test_cli_answers_any_arguments_with_a_code_and_at_most_one_error_line(args: list[str], capsys, tmp_path_factory) -> None:
    ledger = str(tmp_path_factory.getbasetemp() / "fuzz-ledger.db")
    code = main(["--ledger", ledger, *args])
    out, err = capsys.readouterr()
    assert code in (0, 1, 2)
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) <= 1


SOURCES = [*(ROOT / "auditor").rglob("*.py"), *(ROOT / "integrations").rglob("*.py")]


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"\bpickle\b|\bcloudpickle\b|\bmarshal\.loads", "no pickle: a ledger or import must never run code"),
        (r"(?<![\w.])eval\(|(?<![\w.])exec\(", "no eval or exec"),
        (r"shell\s*=\s*True|os\.system\(|os\.popen\(", "no shell built from user data"),
        (r"text\(\s*f[\"']|exec_driver_sql\(\s*f[\"'](?!SELECT (pg_advisory_xact_lock|GET_LOCK|RELEASE_LOCK))", "SQL is parameterised"),
    ],
)
def test_code_builds_nothing_dangerous_from_user_data(pattern: str, why: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in SOURCES
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(pattern, line) and not line.lstrip().startswith("#") and '"""' not in line
    ]
    assert not offenders, f"{why}: {offenders}"


def test_nothing_listens_on_a_network_port() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in SOURCES if re.search(r"\.listen\(|\.bind\(\(|HTTPServer|serve_forever", p.read_text())]
    assert not offenders


def test_errors_are_auditor_errors_with_one_line() -> None:
    for bad in ("Germny", "545", "aws:mars-1", ""):
        with pytest.raises(AuditorError) as info:
            resolve_region(bad)
        assert "\n" not in str(info.value)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(
    st.text(max_size=200),
    st.builds(lambda key, value: f"{key} = {value}\n", st.sampled_from(["region", "pue", "budget", "ledger", "regoin", "budget_mode"]),
              st.one_of(st.text(max_size=20).map(repr), st.floats(allow_nan=True).map(str), st.integers().map(str))),
))
def test_any_auditor_toml_is_read_or_refused_in_one_line(content: str, tmp_path_factory) -> None:
    from auditor.config import load_settings
    from auditor.errors import ConfigError

    directory = tmp_path_factory.mktemp("toml")
    data = content.encode("utf-8", "surrogatepass")
    (directory / "auditor.toml").write_bytes(data)
    try:
        settings = load_settings(environ={}, start=directory)
    except (ConfigError, InvalidInputError) as exc:
        assert "auditor.toml" in str(exc) and "\n" not in str(exc)
    else:
        assert settings.ledger
    assert (directory / "auditor.toml").read_bytes() == data  # never rewritten
