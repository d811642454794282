"""The alert rules file: a YAML document users keep in git, and its validation.

The shape follows Prometheus alerting rules, which on-call engineers already read
(`for`, `labels`, severities, a runbook link), with conditions written in stepscope's
own terms: a KPI key of `stepscope kpis` over a window, per scope value, compared with
a threshold, a budget of the configuration, or its own value in a baseline window.

Validation is strict and exhaustive: every problem in the file is reported at once, each
naming the rule and the field, because a typo in an alert rule fails silently at 3 a.m.
`docs/alerts.md` documents the schema; `default_rules.yaml` is a complete example.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from stepscope.alerts.rule_types import Baseline, Channel, Condition, Rule, RulesError, RuleSet
from stepscope.alerts.rules_check import Checker

__all__ = ["Baseline", "Channel", "Condition", "Rule", "RuleSet", "RulesError",
           "default_rules_path", "load_rules", "parse_rules", "rules_from_dict"]

# -- loading ------------------------------------------------------------------------------


def default_rules_path() -> Path:
    """The rules file shipped inside the package."""
    return Path(str(resources.files("stepscope.alerts").joinpath("default_rules.yaml")))


def load_rules(path: str | Path) -> RuleSet:
    """Read and validate a rules file; raises `RulesError` listing every problem."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(str(file), [f"cannot read: {exc}"]) from None
    return parse_rules(text, source=str(file))


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise RulesError(source, [f"not valid YAML: {exc}"]) from None
    return rules_from_dict(data, source)


def rules_from_dict(data: Any, source: str = "<rules>") -> RuleSet:
    checker = Checker()
    ruleset = checker.file(data, source)
    if checker.problems:
        raise RulesError(source, checker.problems)
    assert ruleset is not None
    return ruleset


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


