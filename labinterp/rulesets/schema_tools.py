"""Small tools for validating a ruleset document that remembers its line numbers.

The YAML reader (:mod:`labinterp.rulesets.loader`) turns mappings into :class:`Map` and
sequences into :class:`Seq`, both carrying the line of every node, so each error names file and
line.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NoReturn

from labinterp.domain.ruleset import RulesetError


class Map(dict[str, Any]):
    """A mapping with the (1-based) line of itself and of each key."""

    line: int = 0

    def __init__(self, *args: Any, line: int = 0, key_lines: dict[str, int] | None = None):
        super().__init__(*args)
        self.line = line
        self.key_lines: dict[str, int] = key_lines or {}

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class Seq(list[Any]):
    """A sequence with the line of itself and of each item."""

    line: int = 0

    def __init__(self, *args: Any, line: int = 0, item_lines: list[int] | None = None):
        super().__init__(*args)
        self.line = line
        self.item_lines: list[int] = item_lines or []

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


class Checker:
    """Raises :class:`RulesetError` naming ``where`` (the file) and a line."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, line: int, message: str) -> NoReturn:
        raise RulesetError(f"{self.where} line {line}: {message}")

    def mapping(self, value: Any, line: int, what: str) -> Map:
        if not isinstance(value, Map):
            self.fail(line, f"{what} must be a mapping")
        return value

    def sequence(self, value: Any, line: int, what: str) -> Seq:
        if not isinstance(value, Seq):
            self.fail(line, f"{what} must be a list")
        return value

    def keys(
        self, node: Map, what: str, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()
    ) -> None:
        allowed = set(required) | set(optional)
        for key in node:
            if key not in allowed:
                self.fail(
                    node.line_of(key),
                    f"unknown key '{key}' in {what}; allowed: {', '.join(sorted(allowed))}",
                )
        for key in required:
            if key not in node:
                self.fail(node.line, f"{what} is missing '{key}'")

    def text(self, node: Map, key: str, what: str) -> str:
        value = node.get(key)
        if not isinstance(value, str) or not value.strip():
            self.fail(node.line_of(key), f"{what}: '{key}' must be a non-empty text")
        return value

    def optional_text(self, node: Map, key: str, what: str) -> str | None:
        return None if node.get(key) is None else self.text(node, key, what)

    def number(self, node: Map, key: str, what: str, positive: bool = False) -> Decimal:
        value = node.get(key)
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            self.fail(node.line_of(key), f"{what}: '{key}' must be a number, not {value!r}")
        number = Decimal(value)
        if not number.is_finite():
            self.fail(node.line_of(key), f"{what}: '{key}' must be finite")
        if positive and number <= 0:
            self.fail(node.line_of(key), f"{what}: '{key}' must be greater than zero")
        return number

    def optional_number(self, node: Map, key: str, what: str) -> Decimal | None:
        return None if node.get(key) is None else self.number(node, key, what)

    def integer(self, node: Map, key: str, what: str) -> int:
        value = node.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(node.line_of(key), f"{what}: '{key}' must be a whole number")
        return value

    def flag(self, node: Map, key: str, what: str, default: bool = False) -> bool:
        value = node.get(key, default)
        if not isinstance(value, bool):
            self.fail(node.line_of(key), f"{what}: '{key}' must be true or false")
        return value

    def texts(self, node: Map, key: str, what: str) -> tuple[str, ...]:
        """A list of texts (or one text) under ``key``; absent is empty."""
        value = node.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        seq = self.sequence(value, node.line_of(key), f"{what}: '{key}'")
        for i, item in enumerate(seq):
            if not isinstance(item, str) or not item.strip():
                self.fail(seq.line_of(i), f"{what}: '{key}' entries must be texts")
        return tuple(seq)

    def members(
        self, node: Map, key: str, what: str, known: set[str] | tuple[str, ...], kind: str
    ) -> tuple[str, ...]:
        values = self.texts(node, key, what)
        for value in values:
            if value not in known:
                self.fail(
                    node.line_of(key),
                    f"{what}: unknown {kind} '{value}'; known: {', '.join(sorted(known))}",
                )
        return values


def require_sources(
    check: Checker, node: Any, known: set[str], line: int = 0, in_scope: bool = False, key: str = ""
) -> None:
    """Every number must have a ``source`` on its own mapping or on one that holds it, and
    every ``source`` must name entries of the ``sources`` table."""
    exempt = {"precision", "grade", "version"}
    if isinstance(node, Map):
        if "source" in node:
            refs = node["source"]
            refs = [refs] if isinstance(refs, str) else refs
            if not isinstance(refs, list) or not refs:
                check.fail(node.line_of("source"), "source must name one or more sources")
            for ref in refs:
                if ref not in known:
                    check.fail(
                        node.line_of("source"),
                        f"unknown source '{ref}'; add it to the sources table",
                    )
        scope = in_scope or "source" in node
        for k, v in node.items():
            if k not in exempt:
                require_sources(check, v, known, node.line_of(k), scope, k)
    elif isinstance(node, Seq):
        for i, item in enumerate(node):
            require_sources(check, item, known, node.line_of(i), in_scope, key)
    elif isinstance(node, int | Decimal) and not isinstance(node, bool) and not in_scope:
        check.fail(line, f"the number {node} ('{key}') has no source")
