"""Settings and where each came from.

Sources, in rising precedence:

1. built-in defaults (documented in ``configs/default.toml``),
2. ``[tool.auditor]`` in the project's ``pyproject.toml``,
3. ``auditor.toml`` beside it (the nearest directory, from the current one upwards, holding
   either file is the project's root),
4. ``AUDITOR_*`` environment variables (``AUDITOR_REGION=DE``),
5. arguments and command-line flags.

Relative ledger paths in a settings file are taken from the file's directory, so a project's
ledger is the same whichever sub-directory a command runs from.

Example:
    >>> settings = load_settings(overrides={"region": "DE"}, environ={}, start=Path("/"))
    >>> settings.region, settings.source_of("region"), settings.source_of("budget_mode")
    ('DE', 'argument', 'default')
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from auditor.budget.limits import Budget, FailMode, Mode, Scope
from auditor.errors import ConfigError, InvalidInputError
from auditor.live.electricitymaps import (
    TOKEN_ENV,
    ElectricityMaps,
    check_url,
    check_zone,
    zone_for_region,
)
from auditor.model.carbon import CarbonModel, Price, check_pue
from auditor.model.embodied import DEFAULT_LIFETIME_YEARS, DEFAULT_UTILIZATION
from auditor.model.regions import WORLD_AVERAGE, resolve_region
from auditor.model.series import IntensitySeries
from auditor.model.units import parse_intensity

ENV_PREFIX = "AUDITOR_"
DEFAULT_LEDGER = ".auditor/ledger.db"


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{value!r} is not a non-empty string")
    return value.strip()


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise InvalidInputError(f"{value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise InvalidInputError(f"{value!r} is not a finite number >= 0")
    return number


MAX_LEDGER_TIMEOUT_S = 86_400.0  # every backend takes it (PostgreSQL's timeouts are 32-bit milliseconds)


def _timeout(value: Any) -> float:
    number = _number(value)
    if not 0 < number <= MAX_LEDGER_TIMEOUT_S:
        raise InvalidInputError(f"{value!r} seconds is not a timeout every ledger takes: give one above 0 "
                                f"and at most {MAX_LEDGER_TIMEOUT_S:g} (a day)")
    return number


def _region(value: Any) -> str:
    text = _text(value)
    resolve_region(text)
    return text


def _pue(value: Any) -> float:
    return check_pue(_number(value))


def _series(value: Any) -> str:
    text = _text(value)
    IntensitySeries.load(text)  # a file that cannot be read or parsed is refused here, by name
    return str(Path(text).expanduser().resolve())


def _intensity(value: Any) -> str:
    text = _text(value)
    parse_intensity(text)
    return text


def _embodied(value: Any) -> float | str:
    """kg CO2e per device (a number >= 0), or ``"table"``: each GPU model's figure from the
    bundled table.

    Example:
        >>> _embodied("Table"), _embodied("462.5"), _embodied(150)
        ('table', 462.5, 150.0)
    """
    if isinstance(value, str) and value.strip().lower() == "table":
        return "table"
    try:
        return _number(value)
    except InvalidInputError:
        raise InvalidInputError(f"embodied {value!r} is neither kg CO2e per device (a number >= 0, such as 462.5) "
                                "nor 'table' (each GPU model's figure from the bundled table)") from None


def _named(name: str, value: Any) -> float:
    try:
        return _number(value)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{name}: {exc}") from None


def _wue(value: Any) -> float:
    return _named("wue (litres per IT kWh)", value)


def _lifetime(value: Any) -> float:
    years = _named("lifetime_years", value)
    if years == 0:
        raise InvalidInputError(f"lifetime_years {value!r} must be above 0 (years a device serves; 6 by default)")
    return years


def _utilization(value: Any) -> float:
    share = _named("utilization", value)
    if not 0 < share <= 1:
        raise InvalidInputError(f"utilization {value!r} must be above 0 and at most 1 (0.85 is 85 % of its life busy)")
    return share


LIVE_SOURCES = ("off", "electricitymaps")


def _live(value: Any) -> str:
    """``off`` or ``electricitymaps`` (false and true read as off and electricitymaps).

    Example:
        >>> _live("ElectricityMaps"), _live(False)
        ('electricitymaps', 'off')
    """
    if isinstance(value, bool):
        return LIVE_SOURCES[int(value)]
    text = _text(value).lower()
    if text not in LIVE_SOURCES:
        raise InvalidInputError(f"live_intensity {value!r} is not one of {', '.join(LIVE_SOURCES)}")
    return text


def _token(value: Any) -> str:
    """A token: a non-empty string without spaces. The message never shows the value."""
    if not isinstance(value, str) or not value.strip() or any(ch.isspace() or not ch.isprintable() for ch in value.strip()):
        raise InvalidInputError("electricitymaps_token is not a token (a non-empty string without spaces)")
    return value.strip()


def _zone(value: Any) -> str:
    return check_zone(_text(value))


def _url(value: Any) -> str:
    return check_url(_text(value))


def _budget(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise InvalidInputError(f"{value!r} has no unit: give it as text with one, e.g. '{value:g} kWh', '{value:g} kg', "
                                f"'{value:g} GPUh' or '${value:g}'")
    text = _text(value)
    Budget.parse(text)
    return text


def _choice(enum: type[Enum]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = _text(value).lower()
        choices = [member.value for member in enum]
        if text not in choices:
            raise InvalidInputError(f"{value!r} is not one of {', '.join(choices)}")
        return text

    return check


@dataclass(frozen=True)
class SettingSpec:
    """One setting: its default, how a raw value is checked, and what it means."""

    default: Any
    check: Callable[[Any], Any]
    help: str


SETTINGS: dict[str, SettingSpec] = {
    "ledger": SettingSpec(DEFAULT_LEDGER, _text, "ledger file path or SQLAlchemy URL"),
    "ledger_timeout": SettingSpec(30.0, _timeout, "seconds a plugin waits for a locked or silent ledger before holding records back"),
    "region": SettingSpec(None, _region, "grid: country code, provider:region or intensity with unit; unset = world average, said in every report"),
    "pue": SettingSpec(None, _pue, "data-centre PUE; unset = the region's published PUE, else 1.58"),
    "price_per_gpu_hour": SettingSpec(None, _number, "USD per GPU-hour (cloud), for costs"),
    "price_per_kwh": SettingSpec(None, _number, "USD per facility kWh (own hardware), for costs"),
    "budget": SettingSpec(None, _budget, "limit such as '5 kg', '300 kWh', '100 GPUh', '$250'; unset = no budget"),
    "budget_scope": SettingSpec(Scope.SWEEP.value, _choice(Scope), "what a budget counts: sweep or project"),
    "budget_mode": SettingSpec(Mode.STOP_NEW.value, _choice(Mode), "warn, stop-new or hard"),
    "budget_fail": SettingSpec(FailMode.OPEN.value, _choice(FailMode),
        "when the budget cannot be checked (ledger unreachable, energy missing): open = go on with a warning, "
        "closed = stop the search"),
    "intensity_series": SettingSpec(None, _series,
        "CSV of the grid's intensity over time (timestamp, intensity_g_per_kwh; or an Electricity Maps or "
        "WattTime export): each trial's CO2e uses the hours it ran in; unset = the region's yearly figure"),
    "market_intensity": SettingSpec(None, _intensity,
        "market-based factor such as '120 g/kWh' (renewable contracts): reports add a market-based CO2e "
        "beside the location-based one; unset = location-based only"),
    "embodied": SettingSpec(None, _embodied,
        "embodied carbon in reports: kg CO2e to make one device with its share of the server (BLOOM: 462.5 "
        "per A100), or 'table' for each GPU model's figure from the bundled table; unset = none"),
    "lifetime_years": SettingSpec(DEFAULT_LIFETIME_YEARS, _lifetime, "years a device serves, for embodied carbon"),
    "utilization": SettingSpec(DEFAULT_UTILIZATION, _utilization, "share of its life a device is busy (0-1], for embodied carbon"),
    "wue": SettingSpec(None, _wue, "water used on site, litres per IT kWh: reports add water_l; unset = none"),
    "live_intensity": SettingSpec("off", _live,
        "'electricitymaps': audit report fetches the grid's hours the trials ran in from Electricity Maps "
        "(with your token; cached on disk) when no intensity series file is given; 'off' (default): no "
        "network"),
    "electricitymaps_token": SettingSpec(None, _token,
        f"your Electricity Maps API token for live_intensity (or the {TOKEN_ENV} environment variable); never "
        f"printed"),
    "electricitymaps_zone": SettingSpec(None, _zone, "the Electricity Maps zone for live_intensity (DE, US-CAL-CISO); unset = the region setting's country"),
    "electricitymaps_url": SettingSpec(None, _url,
        "the Electricity Maps API for live_intensity; unset = https://api.electricitymaps.com/v3 (a proxy or "
        "test server in its place)"),
    "spool_dir": SettingSpec(None, _text, "where trials the ledger cannot take yet are kept until it can; unset = ~/.local/state/auditor/held-back"),
}


@dataclass(frozen=True)
class Settings:
    """The settings in force, each with the source it came from."""

    values: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def source_of(self, name: str) -> str:
        """Where setting ``name`` came from: default, a file path, an env var or 'argument'."""
        return self.sources.get(name, "default")


def find_project_files(start: Path) -> tuple[Path | None, Path | None]:
    """The nearest ``pyproject.toml`` holding ``[tool.auditor]`` and ``auditor.toml``, upwards."""
    for directory in (start, *start.parents):
        auditor_toml = directory / "auditor.toml"
        pyproject = directory / "pyproject.toml"
        has_pyproject = pyproject.is_file() and "[tool.auditor" in pyproject.read_text(errors="replace")
        if auditor_toml.is_file() or has_pyproject:
            return (pyproject if has_pyproject else None, auditor_toml if auditor_toml.is_file() else None)
    return None, None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix or remove the file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None


def _unknown_key(key: str, where: str) -> ConfigError:
    close = difflib.get_close_matches(key, list(SETTINGS), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else f" Known settings: {', '.join(SETTINGS)}."
    return ConfigError(f"{where}: unknown setting {key!r}.{hint}")


def _apply(values: dict[str, Any], sources: dict[str, str], raw: Mapping[str, Any], where: str, base: Path | None = None,
           refused: list[str] | None = None) -> None:
    """Check and take each of ``raw``'s settings; with ``refused``, a bad one is said there and
    left at what it was, instead of raising."""
    for key, value in raw.items():
        try:
            _apply_one(values, sources, key, value, where, base)
        except ConfigError as exc:
            if refused is None:
                raise
            refused.append(str(exc))
    try:
        _keep_one_price(values, sources, where)
    except ConfigError as exc:
        if refused is None:
            raise
        refused.append(f"{exc} (neither is used)")
        for name in _PRICES:
            values[name] = SETTINGS[name].default


def _apply_one(values: dict[str, Any], sources: dict[str, str], key: str, value: Any, where: str, base: Path | None) -> None:
    """Check and take one setting, or raise :class:`ConfigError` naming where it came from."""
    name = key.replace("-", "_")
    if name not in SETTINGS:
        raise _unknown_key(key, where)
    if value is None:
        return
    if name in _PATHS and base is not None and isinstance(value, str) and value.strip() and not Path(value.strip()).expanduser().is_absolute():
        value = str(base / value.strip())  # a settings file's relative path is from the file's directory
    try:
        checked = SETTINGS[name].check(value)
    except InvalidInputError as exc:
        if where == "argument":
            raise  # the caller's own value: its message stands alone
        raise ConfigError(f"{where}: setting {name}: {exc}") from None
    if name == "ledger" and base is not None and "://" not in checked and not Path(checked).is_absolute():
        checked = str(base / checked)
    values[name] = checked
    sources[name] = where


_PRICES = ("price_per_gpu_hour", "price_per_kwh")
_PATHS = ("intensity_series",)


def _keep_one_price(values: dict[str, Any], sources: dict[str, str], where: str) -> None:
    """A price set by a source replaces the other kind of price set by a weaker source."""
    from_here = [name for name in _PRICES if sources.get(name) == where]
    if len(from_here) == 2:
        raise ConfigError(f"{where}: both price_per_gpu_hour and price_per_kwh are set; keep one")
    if from_here:
        other = _PRICES[1 - _PRICES.index(from_here[0])]
        values[other] = None
        sources.pop(other, None)


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    start: Path | None = None,
    refused: list[str] | None = None,
) -> Settings:
    """The settings in force for a command run in ``start`` (default: the current directory).

    Args:
        overrides: values from arguments or flags; None values are ignored.
        environ: the environment (default: ``os.environ``).
        start: where to look for the project's settings files.
        refused: if given, a bad setting in a file or variable is not raised: its message is
            added here and the setting keeps its default (``audit doctor`` still runs).

    Raises:
        ConfigError: a file, variable or argument holds an unusable value; the message names it.
    """
    environ = os.environ if environ is None else environ
    values = {name: spec.default for name, spec in SETTINGS.items()}
    sources: dict[str, str] = {}
    pyproject, auditor_toml = find_project_files((start or Path.cwd()).resolve())
    if pyproject is not None:
        table = _read_toml(pyproject).get("tool", {}).get("auditor", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{pyproject}: [tool.auditor] must be a table")
        _apply(values, sources, table, str(pyproject), pyproject.parent, refused)
    if auditor_toml is not None:
        _apply(values, sources, _read_toml(auditor_toml), str(auditor_toml), auditor_toml.parent, refused)
    for key, raw in environ.items():
        if key.startswith(ENV_PREFIX) and raw.strip():
            name = key[len(ENV_PREFIX):].lower()
            if name in SETTINGS:
                _apply(values, sources, {name: raw}, key, refused=refused)
    _apply(values, sources, {k: v for k, v in (overrides or {}).items() if v is not None}, "argument")
    return Settings(values, sources)


def carbon_model(settings: Settings) -> CarbonModel:
    """The carbon and cost model the settings describe (world average when no region is set)."""
    return CarbonModel(
        region=resolve_region(settings.region) if settings.region else WORLD_AVERAGE,
        pue=settings.pue,
        price=Price(settings.price_per_gpu_hour, settings.price_per_kwh),
        series=IntensitySeries.load(settings.intensity_series) if settings.intensity_series else None,
        market_g_per_kwh=parse_intensity(settings.market_intensity) if settings.market_intensity else None,
    )


SECRETS = frozenset({"electricitymaps_token"})


def shown(settings: Settings, name: str) -> Any:
    """Setting ``name`` as it may be printed: a secret set reads ``(set, hidden)``.

    Example:
        >>> shown(Settings({"electricitymaps_token": "abc"}), "electricitymaps_token")
        '(set, hidden)'
    """
    value = settings.values[name]
    return "(set, hidden)" if name in SECRETS and value is not None else value


def live_source(settings: Settings, environ: Mapping[str, str] | None = None) -> ElectricityMaps | None:
    """The live intensity source the settings turn on (None when ``live_intensity`` is off).

    Raises:
        InvalidInputError: it is on without a token, or without a zone (no
            ``electricitymaps_zone`` and no country in ``region``); the message says what to set.

    Example:
        >>> live_source(Settings({"live_intensity": "off"})) is None
        True
        >>> live_source(Settings({"live_intensity": "electricitymaps", "electricitymaps_token": "t", "region": "FR",
        ...                       "electricitymaps_zone": None, "electricitymaps_url": None}), environ={}).zone
        'FR'
    """
    if settings.values.get("live_intensity", "off") == "off":
        return None
    environ = os.environ if environ is None else environ
    token = settings.values.get("electricitymaps_token") or environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise InvalidInputError(f"live_intensity is electricitymaps but no token is set: export {TOKEN_ENV}=... (a token from "
                                "https://portal.electricitymaps.com), or give --intensity-series FILE, or set live_intensity off")
    zone = settings.values.get("electricitymaps_zone") or zone_for_region(settings.values.get("region"))
    if not zone:
        raise InvalidInputError("live_intensity is electricitymaps but no zone is known: set electricitymaps_zone (DE, US-CAL-CISO) "
                                "or region to a country (audit config set region DE)")
    url = settings.values.get("electricitymaps_url")
    return ElectricityMaps(token=_token(token), zone=check_zone(zone), **({"base_url": url} if url else {}))


def budget_from(settings: Settings) -> Budget | None:
    """The budget the settings describe, or None."""
    if settings.budget is None:
        return None
    return Budget.parse(settings.budget, scope=settings.budget_scope, mode=settings.budget_mode, fail=settings.budget_fail)


@dataclass(frozen=True)
class PluginSettings:
    """What a framework plugin needs from its arguments and the settings beneath them."""

    ledger: str
    model: CarbonModel
    budget: Budget | None
    ledger_timeout: float = 30.0
    spool_dir: str | None = None


def plugin_settings(*, budget: str | Budget | None = None, **arguments: Any) -> PluginSettings:
    """Settings for a plugin: its keyword arguments (``ledger``, ``scope``, ``mode``, ``region``,
    ``pue``, ``price_per_gpu_hour``, ``price_per_kwh``, ``fail``, ``intensity_series``,
    ``market_intensity``) over the project's settings.

    Raises:
        InvalidInputError: an unusable value, or a budget in USD without a price.
    """
    names = {"scope": "budget_scope", "mode": "budget_mode", "fail": "budget_fail"}
    overrides = {names.get(key, key): value for key, value in arguments.items()}
    overrides["budget"] = budget.text if isinstance(budget, Budget) else budget
    settings = load_settings(overrides)
    model = carbon_model(settings)
    chosen = budget if isinstance(budget, Budget) else budget_from(settings)
    if chosen is not None and chosen.limit.metric.value == "cost_usd" and not model.price.is_set:
        raise InvalidInputError("a budget in USD needs a price: give price_per_gpu_hour or price_per_kwh")
    return PluginSettings(settings.ledger, model, chosen, settings.ledger_timeout, settings.spool_dir)
