"""Ruleset files: ``reference_ranges/*.yaml`` read, validated and built into immutable
:class:`~labinterp.domain.Ruleset` objects.

The validators live here, beside the loader, not in the pure engine: the domain only reads a
built ruleset. ``loader`` reads YAML keeping every line; ``ruleset_schema`` (with
``analyte_schema`` and ``ruleset_rules``) checks and builds; ``schema_tools`` holds the
line-aware document and its checker.
"""

from labinterp.rulesets.loader import (
    RulesetError,
    default_directory,
    load_ruleset,
    load_rulesets,
    read_document,
)

__all__ = ["RulesetError", "default_directory", "load_ruleset", "load_rulesets", "read_document"]
