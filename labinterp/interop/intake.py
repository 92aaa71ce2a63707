"""TEMPORARY stand-in for the fhir branch's seam (replaced by theirs at the merge)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Translated:
    document: dict[str, Any]
    paths: dict[str, str]
    not_interpreted: list[dict[str, str]]
    source_format: str
    source_text: str
