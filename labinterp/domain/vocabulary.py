"""The words an interpretation is sorted and filtered by, each defined once.

``FindingStatus`` and ``Priority`` are what the engine decides; everything that stores,
filters, orders, shows or documents them imports them from here (the API's enums, the review
queue's order, the pages' badges), never a literal.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class FindingStatus(StrEnum):
    """What an interpretation found (a panel's own status is about processing)."""

    FLAGGED = "flagged"  # any finding or red flag
    INDETERMINATE = "indeterminate"  # none, but a result could not be judged
    NORMAL = "normal"

    @property
    def needs_review(self) -> bool:
        """Flagged and indeterminate panels go to a clinician's review queue."""
        return self is not FindingStatus.NORMAL


class Priority(StrEnum):
    """How soon a clinician must look: the review queue's order, most pressing first."""

    CRITICAL = "critical"  # any critical value
    URGENT = "urgent"  # grade >= 3, or an urgent red flag
    ROUTINE = "routine"

    @property
    def rank(self) -> int:
        """0 for critical, 1 urgent, 2 routine: stored beside the word, so the queue orders
        by an indexed integer rather than a CASE over text."""
        return _RANKS[self]


_RANKS = {Priority.CRITICAL: 0, Priority.URGENT: 1, Priority.ROUTINE: 2}


def significance(body: Mapping[str, Any]) -> str:
    """A digest of what a reviewer signed off: the priority, each finding's code, grade and
    severity, and the red-flag codes.

    Two interpretations with the same digest say the same thing to a clinician, whatever
    their wording, explanations or ruleset version: a panel reviewed against one stays
    reviewed when the other replaces it; any other change sends it back to the queue.
    (API.md: "changed" is finding codes, any finding's grade or severity, or the priority;
    red flags are included too, as a careful reviewer would want a new one to be seen.)
    """
    findings = sorted(
        (str(f["code"]), f.get("grade"), f.get("severity")) for f in body.get("findings", [])
    )
    red_flags = sorted(str(f["code"]) for f in body.get("red_flags", []))
    canonical = json.dumps(
        [str(body.get("priority")), findings, red_flags], separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
