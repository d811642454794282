"""The one configuration file, `stepscope.toml`, and its schema.

Every later part (ingest, pricing, budgets, alerts) reads its settings from the frozen
dataclasses below, so the schema lives in exactly one place. Validation is strict: an
unknown key or a wrong type is an error naming the file and the key, because a silently
ignored typo in `[outcome] completd = [...]` would skew every completion rate.
Everything has a default, so stepscope works with no file at all.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

DEFAULT_CONFIG_PATH = "stepscope.toml"


class ConfigError(ValueError):
    """The configuration file is unreadable or breaks the schema (exit status 2)."""


@dataclass(frozen=True)
class WorkflowConfig:
    """Where a trace's workflow name comes from: the first of these keys on its root span."""

    attributes: tuple[str, ...] = (
        "gen_ai.workflow.name",
        "gen_ai.agent.name",
        "traceloop.workflow.name",
        "agent.name",
        "ai.telemetry.functionId",
    )
    fallback_to_root_name: bool = True


@dataclass(frozen=True)
class OutcomeConfig:
    """How a run's task outcome is read from its root span (values compared case-insensitively)."""

    attribute: str = "task.outcome"
    completed: tuple[str, ...] = ("completed", "resolved", "success")
    escalated: tuple[str, ...] = ("escalated", "handoff", "human")
    failed: tuple[str, ...] = ("failed", "error", "abandoned")


@dataclass(frozen=True)
class TenantConfig:
    attributes: tuple[str, ...] = ("tenant.id", "enduser.org")


@dataclass(frozen=True)
class PromptConfig:
    """Keys naming the prompt template and its version on a step."""

    name_attributes: tuple[str, ...] = ("langfuse.observation.prompt.name", "prompt.name")
    version_attributes: tuple[str, ...] = (
        "langfuse.observation.prompt.version",
        "prompt.version",
    )


@dataclass(frozen=True)
class PrivacyConfig:
    """What happens to prompt/completion content and secrets before anything is stored."""

    content: Literal["keep", "redact", "drop"] = "redact"


@dataclass(frozen=True)
class IngestConfig:
    """Limits that keep a hostile or broken file from exhausting the machine."""

    max_file_bytes: int = 2 * 1024**3
    max_decompressed_bytes: int = 4 * 1024**3
    max_decompression_ratio: int = 200


@dataclass(frozen=True)
class PriceConfig:
    """A user price; it wins over the price library for the models it matches."""

    match: str
    input_per_mtok: float
    output_per_mtok: float
    match_type: Literal["exact", "glob", "regex"] = "exact"
    provider: str | None = None
    cached_input_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None
    effective_from: date | None = None
    effective_to: date | None = None


@dataclass(frozen=True)
class WorkflowBudget:
    monthly_usd: float | None = None
    daily_usd: float | None = None
    latency_p95_ms: float | None = None


@dataclass(frozen=True)
class TenantBudget:
    monthly_usd: float | None = None
    daily_usd: float | None = None


@dataclass(frozen=True)
class BudgetsConfig:
    monthly_usd: float | None = None
    tenant_daily_usd: float | None = None
    workflows: dict[str, WorkflowBudget] = field(default_factory=dict)
    tenants: dict[str, TenantBudget] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    workflow: WorkflowConfig = field(default_factory=WorkflowConfig)
    outcome: OutcomeConfig = field(default_factory=OutcomeConfig)
    tenant: TenantConfig = field(default_factory=TenantConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    prices: tuple[PriceConfig, ...] = ()
    budgets: BudgetsConfig = field(default_factory=BudgetsConfig)
    source: str | None = None  # the file it came from, for messages; not a TOML key


_NOT_KEYS = {"source"}


def load_config(path: str | Path | None = None, *, required: bool = False) -> Config:
    """Read and validate a configuration file.

    With `path=None` the default `./stepscope.toml` is read when it exists and the built-in
    defaults are used when it does not. A path given explicitly (`--config FILE`) must exist.
    """
    explicit = path is not None
    file = Path(path if path is not None else DEFAULT_CONFIG_PATH)
    if not file.exists():
        if explicit or required:
            raise ConfigError(f"{file}: configuration file not found")
        return Config()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    return config_from_dict(data, source=str(file))


def config_from_dict(data: dict[str, Any], source: str = "<config>") -> Config:
    config = _build(Config, data, source, "")
    _check_prices(config.prices, source)
    return dataclasses.replace(config, source=source)


def _build(cls: type, data: Any, source: str, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {where or 'top level'}: expected a table, got {describe_value(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in _NOT_KEYS}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(
            f"{source}: unknown key {_join(where, unknown[0])!r} (known keys here: {known})"
        )
    values = {}
    for name, spec in fields.items():
        key = _join(where, name)
        if name in data:
            values[name] = _coerce(hints[name], data[name], source, key)
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: {key}: required key is missing")
    return cls(**values)


def _coerce(hint: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, source, key)
    if origin is Literal:
        if value not in args:
            allowed = " | ".join(repr(a) for a in args)
            raise ConfigError(f"{source}: {key}: {value!r} is not one of {allowed}")
        return value
    if origin is tuple:
        item_type = args[0]
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key}: expected a list, got {describe_value(value)}")
        return tuple(_coerce(item_type, v, source, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key}: expected a table, got {describe_value(value)}")
        return {k: _coerce(args[1], v, source, _join(key, k)) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, key)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key}: expected true or false, got {describe_value(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {key}: expected an integer, got {describe_value(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{source}: {key}: expected a number, got {describe_value(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key}: expected a string, got {describe_value(value)}")
        return value
    if hint is date:
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise ConfigError(f"{source}: {key}: expected a date such as 2026-10-01, got {value!r}")
    raise TypeError(f"configuration schema uses an unsupported type {hint!r} at {key}")


def _check_prices(prices: tuple[PriceConfig, ...], source: str) -> None:
    for i, price in enumerate(prices):
        key = f"prices[{i}]"
        if price.match_type == "regex":
            try:
                re.compile(price.match)
            except re.error as exc:
                raise ConfigError(f"{source}: {key}.match: invalid regex: {exc}") from None
        for name in ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok",
                     "cache_write_per_mtok"):
            rate = getattr(price, name)
            if rate is not None and rate < 0:
                raise ConfigError(f"{source}: {key}.{name}: a price cannot be negative")
        if price.effective_from and price.effective_to and price.effective_to <= price.effective_from:
            raise ConfigError(f"{source}: {key}.effective_to: must be after effective_from")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def describe_value(value: Any, *, mapping: str = "a table") -> str:
    """How an error message names a wrong value: its kind, and the value when short.

    Shared by every file stepscope validates (this TOML, alert rule YAML), so their
    messages read alike; `mapping` is what the file format calls a key-value table.
    """
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, Mapping):
        return mapping
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"string {value!r}"
    return f"{type(value).__name__} {value!r}"
