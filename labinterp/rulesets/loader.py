"""Loading ``reference_ranges/*.yaml`` into validated, immutable :class:`Ruleset` objects.

The YAML is composed into nodes first so that every value keeps its line: a malformed file is
a :class:`RulesetError` naming the file and the line, never a traceback from deep inside.
Numbers are read as exact decimals ("0.70" stays 0.70).
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from labinterp.domain.ruleset import Ruleset, RulesetError
from labinterp.rulesets.ruleset_schema import build_ruleset
from labinterp.rulesets.schema_tools import Map, Seq

__all__ = ["RulesetError", "default_directory", "load_ruleset", "load_rulesets"]


def default_directory() -> Path:
    """``LABINTERP_RULESETS_DIR`` if set, else the repository's ``reference_ranges/``."""
    override = os.environ.get("LABINTERP_RULESETS_DIR")
    if override:
        return Path(override)
    from labinterp.resources import roots

    for root in roots():
        if (root / "reference_ranges").is_dir():
            return root / "reference_ranges"
    return Path.cwd() / "reference_ranges"


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _scalar(node: yaml.ScalarNode, where: str) -> Any:
    tag = node.tag
    line = node.start_mark.line + 1
    if tag == "tag:yaml.org,2002:float":
        try:
            number = Decimal(node.value.replace("_", ""))
        except InvalidOperation:
            raise RulesetError(f"{where} line {line}: {node.value!r} is not a number") from None
        if not number.is_finite():
            raise RulesetError(f"{where} line {line}: {node.value!r} is not a finite number")
        return number
    if tag in (
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:null",
        "tag:yaml.org,2002:timestamp",
    ):
        value = yaml.SafeLoader("").construct_object(node, deep=True)
        if isinstance(value, dt.datetime):
            raise RulesetError(f"{where} line {line}: give a date, not a date and time")
        return value
    if tag == "tag:yaml.org,2002:str":
        return node.value
    raise RulesetError(f"{where} line {line}: unsupported YAML tag {tag}")


def _convert(node: yaml.Node, where: str) -> Any:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node, where)
    if isinstance(node, yaml.SequenceNode):
        items = [_convert(item, where) for item in node.value]
        return Seq(items, line=line, item_lines=[i.start_mark.line + 1 for i in node.value])
    if isinstance(node, yaml.MappingNode):
        mapping = Map(line=line)
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise RulesetError(
                    f"{where} line {key_node.start_mark.line + 1}: keys must be plain values"
                )
            key = (
                key_node.value
                if key_node.tag == "tag:yaml.org,2002:str"
                else _scalar(key_node, where)
            )
            if key in mapping:
                raise RulesetError(
                    f"{where} line {key_node.start_mark.line + 1}: duplicate key '{key}'"
                )
            mapping[key] = _convert(value_node, where)
            mapping.key_lines[key] = key_node.start_mark.line + 1
        return mapping
    raise RulesetError(f"{where} line {line}: unsupported YAML node")  # pragma: no cover


def read_document(text: str, where: str) -> Any:
    """YAML text -> :class:`Map`/:class:`Seq` tree with lines; syntax errors name the line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise RulesetError(f"{where} line {line}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise RulesetError(f"{where} line 1: invalid YAML: {exc}") from None
    if node is None:
        raise RulesetError(f"{where} line 1: the file is empty")
    return _convert(node, where)


def load_ruleset(path: Path) -> Ruleset:
    """Read and validate one ruleset file; its version must match the file name."""
    path = Path(path)
    where = _display(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesetError(f"{where} line 1: cannot read: {exc}") from None
    return build_ruleset(read_document(text, where), where, expected_version=path.stem)


def load_rulesets(directory: Path | None = None) -> dict[str, Ruleset]:
    """Every ``*.yaml`` ruleset in ``directory`` (default: :func:`default_directory`), by
    version."""
    directory = Path(directory) if directory is not None else default_directory()
    if not directory.is_dir():
        raise RulesetError(f"{_display(directory)} line 0: not a directory of rulesets")
    rulesets: dict[str, Ruleset] = {}
    for path in sorted(directory.glob("*.yaml")):
        ruleset = load_ruleset(path)
        rulesets[ruleset.version] = ruleset
    if not rulesets:
        raise RulesetError(f"{_display(directory)} line 0: no ruleset files (*.yaml)")
    return rulesets
