"""Configuration: defaults without a file, strict validation naming file and key."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from stepscope.cli import cli
from stepscope.config import Config, ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "stepscope.example.toml"


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "stepscope.toml"
    path.write_text(text)
    return path


def test_no_file_means_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert config == Config()
    assert config.outcome.attribute == "task.outcome"
    assert config.privacy.content == "redact"


def test_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.toml")


def test_example_file_is_valid_and_complete():
    config = load_config(EXAMPLE)
    assert config.prices[0].match == "acme-ft-*"
    assert config.prices[0].match_type == "glob"
    assert config.prices[0].effective_from == date(2026, 10, 1)
    assert config.budgets.monthly_usd == 20000
    assert config.budgets.workflows["ticket_triage"].latency_p95_ms == 15000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[outcome]\ncompletd = ['done']\n", "unknown key 'outcome.completd'"),
        ("[outcome]\ncompleted = 'done'\n", "outcome.completed: expected a list"),
        ("[privacy]\ncontent = 'hide'\n", "privacy.content: 'hide' is not one of"),
        ("[[prices]]\nmatch = 'x'\noutput_per_mtok = 1\n",
         "prices[0].input_per_mtok: required key is missing"),
        ("[[prices]]\nmatch = '('\nmatch_type = 'regex'\ninput_per_mtok = 1\noutput_per_mtok = 1\n",
         "prices[0].match: invalid regex"),
        ("[budgets]\nmonthly_usd = 'lots'\n", "budgets.monthly_usd: expected a number"),
        ("[budgets.workflows.triage]\nlatency_p95 = 3\n",
         "unknown key 'budgets.workflows.triage.latency_p95'"),
        ("[workflow\n", "not valid TOML"),
        ("bogus = 1\n", "unknown key 'bogus'"),
    ],
)
def test_invalid_config_names_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_cli_exits_2_naming_the_key(tmp_path):
    path = write(tmp_path, "[tenant]\nattributes = 'tenant.id'\n")
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert f"{path}: tenant.attributes: expected a list" in result.output


def test_cli_config_check_accepts_the_example():
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "is valid" in result.output


def test_cli_config_show_prints_effective_settings_as_json(tmp_path, monkeypatch):
    import json

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["config", "show", "--format", "json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["outcome"]["completed"] == ["completed", "resolved", "success"]
    assert shown["privacy"] == {"content": "redact"}
