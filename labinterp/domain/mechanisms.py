"""What mechanisms hand back to the interpretation: finding drafts, notes and follow-ups."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labinterp.domain.findings import FindingDraft
from labinterp.domain.judging import CriticalLimit


@dataclass(frozen=True)
class Note:
    code: str
    detail: str
    analyte: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "detail": self.detail}
        if self.analyte is not None:
            out["analyte"] = self.analyte
        return out


@dataclass
class Outcome:
    drafts: list[FindingDraft] = field(default_factory=list)
    notes: list[tuple[str, dict[str, str], str | None]] = field(default_factory=list)
    follow_ups: list[str] = field(default_factory=list)  # codes raised by a mechanism
    # (analyte, limit, what crossed it): that analyte's finding is critical because of a
    # related value (a measured total calcium beyond its limit, confirmed by ionized calcium)
    escalations: list[tuple[str, CriticalLimit, str]] = field(default_factory=list)

    def escalate(self, analyte: str, limit: CriticalLimit, subject: str) -> None:
        self.escalations.append((analyte, limit, subject))

    def note(self, code: str, about: str | None = None, **fields: str) -> None:
        """A note ``code`` (about an analyte, if any) with the fields of its template."""
        self.notes.append((code, fields, about))
