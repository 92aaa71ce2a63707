"""Interpreting an accepted panel with a ruleset: the whole answer, as an immutable value."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from labinterp.domain.acceptance import AcceptedPanel, accept_panel
from labinterp.domain.calcium import calcium
from labinterp.domain.context import (
    ContributingFactor,
    FollowUp,
    RedFlag,
    contributing_factors,
    follow_ups,
    red_flags,
)
from labinterp.domain.findings import Finding, FindingDraft, build_finding, generic_draft
from labinterp.domain.judging import Interval, Judgement, Patient, judge, patient_of
from labinterp.domain.mechanisms import Note, Outcome
from labinterp.domain.ruleset import Ruleset
from labinterp.domain.summary import summarize
from labinterp.domain.types import RawPanel
from labinterp.domain.units import join_and, normalise_unit
from labinterp.domain.vitamins import decision_finding
from labinterp.domain.vocabulary import FindingStatus, Priority

_DIMENSION_WORD = {"mass": "mass", "substance": "molar"}


@dataclass(frozen=True)
class Interpretation:
    ruleset: str
    status: FindingStatus
    priority: Priority
    results: tuple[Judgement, ...]
    findings: tuple[Finding, ...]
    red_flags: tuple[RedFlag, ...]
    contributing_factors: tuple[ContributingFactor, ...]
    follow_up: tuple[FollowUp, ...]
    notes: tuple[Note, ...]
    summary: str

    @property
    def finding_codes(self) -> tuple[str, ...]:
        return tuple(f.code for f in self.findings)

    @property
    def red_flag_codes(self) -> tuple[str, ...]:
        return tuple(f.code for f in self.red_flags)

    @property
    def note_codes(self) -> tuple[str, ...]:
        return tuple(n.code for n in self.notes)

    @property
    def follow_up_codes(self) -> tuple[str, ...]:
        return tuple(f.code for f in self.follow_up)

    def finding(self, code: str) -> Finding | None:
        return next((f for f in self.findings if f.code == code), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (numbers stay Decimal), the keys of API.md's interpretation."""
        return {
            "ruleset": self.ruleset,
            "status": self.status,
            "priority": self.priority,
            "results": [j.to_dict() for j in self.results],
            "findings": [f.to_dict() for f in self.findings],
            "red_flags": [f.to_dict() for f in self.red_flags],
            "contributing_factors": [c.to_dict() for c in self.contributing_factors],
            "follow_up": [f.to_dict() for f in self.follow_up],
            "notes": [n.to_dict() for n in self.notes],
            "summary": self.summary,
        }


def _symptom_sets(panel: AcceptedPanel, ruleset: Ruleset) -> dict[str, str]:
    """Symptom sets the patient reports, with what put them there: {'neuromuscular': 'cramps'}."""
    ctx = panel.context
    present: dict[str, str] = {}
    if ctx.twitching is None and not ctx.symptoms:
        return present
    for name, (twitching, symptoms) in ruleset.symptom_sets.items():
        why = (["twitching"] if twitching and ctx.twitching is not None else []) + [
            s.replace("_", " ") for s in ctx.symptoms if s in symptoms
        ]
        if why:
            present[name] = join_and(why)
    return present


def _early_notes(judged: list[Judgement], patient: Patient, out: Outcome) -> None:
    if not patient.age_known:
        out.note("age_unknown")
    for j in judged:
        r = j.result
        if r.loinc_unit_mismatch:
            code = next(c for c in j.analyte.loinc if c.code == r.loinc)
            unit = j.analyte.units[normalise_unit(r.reported_unit)]
            out.note(
                "loinc_unit_mismatch",
                r.analyte,
                analyte=r.analyte,
                loinc=code.code,
                loinc_name=code.name,
                loinc_dimension=_DIMENSION_WORD[code.dimension],
                unit=r.reported_unit,
                unit_dimension=_DIMENSION_WORD[unit.dimension],
            )
        if j.open_side is not None:
            rr = r.reference_range
            assert rr is not None
            lab = Interval(rr.low, rr.high, r.reported_unit, "lab", "laboratory")
            fields = {
                "analyte": r.analyte,
                "range": lab.text(),
                "missing": "lower" if rr.low is None else "upper",
            }
            if j.open_side == "ruleset":
                assert j.interval is not None
                out.note("lab_range_open_side", r.analyte, interval=j.interval.text(), **fields)
            else:
                out.note("lab_range_open_side_unjudged", r.analyte, **fields)
        if j.age_ambiguous:
            out.note(
                "age_imprecise", r.analyte, analyte=r.analyte, age_years=str(patient.age_years_only)
            )


def _draft_findings(
    judged: dict[str, Judgement], patient: Patient, ruleset: Ruleset, out: Outcome
) -> None:
    for j in judged.values():
        analyte = j.analyte
        if analyte.albumin_correction is not None or analyte.decided_by:
            calcium(j, judged, ruleset, out)
        elif analyte.decision is not None:
            decision_finding(j, judged, patient, ruleset, out)
        else:
            draft = generic_draft(j)
            if draft is not None:
                out.drafts.append(draft)


def _escalate(out: Outcome) -> None:
    for analyte, limit, subject in out.escalations:
        for draft in out.drafts:
            if draft.judgement.result.analyte == analyte and draft.critical is None:
                draft.critical, draft.critical_subject = limit, subject


def _hemolysis(
    panel: AcceptedPanel, ruleset: Ruleset, drafts: list[FindingDraft], out: Outcome
) -> None:
    if not panel.hemolyzed:
        return
    rule = ruleset.hemolysis
    for draft in drafts:
        if draft.code in rule.possibly_spurious:
            draft.possibly_spurious = True
            what = draft.judgement.analyte.display.lower()
            draft.extra.append(
                f"The specimen is hemolyzed: red cells release {what}, so this "
                f"may be spurious ({ruleset.cite(rule.sources)})."
            )
    if any(r.analyte in rule.follow_up_analytes for r in panel.results):
        out.follow_ups.append(rule.follow_up)


def _notes(out: Outcome, ruleset: Ruleset) -> tuple[Note, ...]:
    notes: list[Note] = []
    for code, fields, analyte in out.notes:
        rule = ruleset.notes[code]
        detail = rule.detail.format_map(defaultdict(str, fields))
        note = Note(code, detail, analyte)
        if note not in notes:
            notes.append(note)
    return tuple(notes)


def interpret(panel: AcceptedPanel, ruleset: Ruleset) -> Interpretation:
    """Judge every result, decide findings, evaluate the context, summarise. Pure."""
    patient = patient_of(panel, ruleset)
    judged_list = [judge(r, ruleset.analytes[r.analyte], patient, ruleset) for r in panel.results]
    judged = {j.result.analyte: j for j in judged_list}
    out = Outcome()
    _early_notes(judged_list, patient, out)
    _draft_findings(judged, patient, ruleset, out)
    _escalate(out)
    _hemolysis(panel, ruleset, out.drafts, out)
    symptom_sets = _symptom_sets(panel, ruleset)
    findings = tuple(
        sorted((build_finding(d, ruleset, symptom_sets) for d in out.drafts), key=Finding.rank)
    )
    notes = _notes(out, ruleset)
    flags = red_flags(panel.context, ruleset)
    codes = {f.code for f in findings}
    factors = contributing_factors(panel.context, codes | {n.code for n in notes}, ruleset)
    follow = follow_ups(codes, set(judged), flags, out.follow_ups, ruleset)
    if findings or flags:
        status = FindingStatus.FLAGGED
    elif any(j.code == "IND" for j in judged_list):
        status = FindingStatus.INDETERMINATE
    else:
        status = FindingStatus.NORMAL
    if any(j.critical is not None for j in judged_list) or any(f.critical for f in findings):
        priority = Priority.CRITICAL
    elif any((f.grade or 0) >= 3 for f in findings) or any(f.urgent for f in flags):
        priority = Priority.URGENT
    else:
        priority = Priority.ROUTINE
    summary = summarize(findings, flags, factors, follow, notes, judged_list, ruleset.version)
    return Interpretation(
        ruleset.version,
        status,
        priority,
        tuple(judged_list),
        findings,
        flags,
        factors,
        follow,
        notes,
        summary,
    )


def interpret_many(
    panels: Iterable[RawPanel], ruleset: Ruleset, now: dt.datetime
) -> Iterator[Interpretation | Exception]:
    """Accept and interpret each panel with ``ruleset``, in order, one answer per panel: its
    :class:`Interpretation`, or the exception that stopped it — :class:`PanelRejected` when
    the panel does not pass this ruleset's acceptance, anything else an engine failure — so
    that one bad panel never stops a chunk (re-processing calls this on chunks of panels).

    ``now`` is the acceptance's clock (the "not in the future" checks): for history, the
    time the job started. Lazy: answers come as the panels are read.
    """
    for panel in panels:
        try:
            yield interpret(accept_panel(panel, ruleset, now), ruleset)
        except Exception as exc:  # handed back, one per panel, to be counted
            yield exc
