"""The one paragraph a clinician reads first: the most important thing first."""

from __future__ import annotations

from labinterp.domain.context import ContributingFactor, FollowUp, RedFlag
from labinterp.domain.findings import Finding, phrase
from labinterp.domain.judging import Judgement
from labinterp.domain.mechanisms import Note
from labinterp.domain.units import fmt, join_and


def _finding_phrase(f: Finding, display: str) -> str:
    name = phrase(f.code)
    if f.grade is not None:
        name += f" grade {f.grade}"
    what = "albumin-corrected calcium" if f.measured is not None else display.lower()
    if what.endswith(" (total)"):
        what = "total " + what.removesuffix(" (total)")
    if what.startswith("25-oh"):
        what = "25-OH vitamin D"
    if what.startswith("vitamin b12"):
        what = "vitamin B12"
    if what.startswith("pth") or what.startswith("parathyroid"):
        what = "PTH"
    detail = f"{what} {fmt(f.value)} {f.unit}"
    if f.critical is not None:
        limit = f.critical
        crossing = f"{limit.direction} the critical limit {limit.value} {limit.unit}"
        detail += f"; {f.critical_subject} {crossing}" if f.critical_subject else f", {crossing}"
    else:
        detail += f", {f.severity.replace('_', '-')}"
    if f.possibly_spurious:
        detail += ", possibly spurious"
    return f"{name} ({detail})"


def summarize(
    findings: tuple[Finding, ...],
    flags: tuple[RedFlag, ...],
    factors: tuple[ContributingFactor, ...],
    follow: tuple[FollowUp, ...],
    notes: tuple[Note, ...],
    judged: list[Judgement],
    version: str,
) -> str:
    critical: list[str] = []
    grave: list[str] = []  # life-threatening, not critical: still before any red flag
    others: list[str] = []
    displays = {j.result.analyte: j.analyte.display for j in judged} if findings else {}
    for f in findings:
        text = _finding_phrase(f, displays.get(f.analyte, f.analyte))
        if f.critical is not None:
            critical.append(text)
        elif f.severity == "life_threatening":
            grave.append(text)
        else:
            others.append(text)
    urgent = [f for f in flags if f.urgent]
    plain = [f for f in flags if not f.urgent]
    unjudged = [j.analyte.display.lower() for j in judged if j.code == "IND"]
    sentences: list[str] = []
    if critical:
        sentences.append(f"Critical value: {'; '.join(critical)}.")
    if grave:
        sentences.append(f"Life-threatening: {'; '.join(grave)}.")
    if urgent:
        sentences.append(
            f"Urgent red flag{'s' if len(urgent) > 1 else ''}: "
            f"{'; '.join(f.detail for f in urgent)}."
        )
    if others:
        lead = "Also" if critical or grave or urgent else "Findings"
        sentences.append(f"{lead}: {'; '.join(others)}.")
    if plain:
        sentences.append(
            f"Red flag{'s' if len(plain) > 1 else ''}: {'; '.join(f.detail for f in plain)}."
        )
    outside = [
        f"{j.analyte.display.lower()} {fmt(j.result.value)} {j.result.unit} ({j.code})"
        for j in judged
        if j.code in ("L", "H")
    ]
    if not findings and not flags:
        if unjudged:
            why = (
                "the age is known only in whole years: give the birth date"
                if any(n.code == "age_imprecise" for n in notes)
                else "no reference interval for this patient; a laboratory range is needed"
            )
            sentences.append(
                f"No abnormal finding, but {join_and(unjudged)} could not be judged ({why})."
            )
        elif outside:
            sentences.append(
                "No findings and no red flags; outside its interval but not a finding under "
                f"ruleset {version} (see the notes): {join_and(outside)}."
            )
        elif len(judged) == 1:
            sentences.append(
                f"The result is within its reference interval of ruleset {version}; "
                "no findings and no red flags."
            )
        else:
            sentences.append(
                f"All {len(judged)} results are within the reference intervals of ruleset "
                f"{version}; no findings and no red flags."
            )
    elif unjudged:
        sentences.append(f"Not judged: {join_and(unjudged)} (no reference interval).")
    note_codes = [n for n in notes if n.code != "age_unknown"]
    if note_codes:
        sentences.append(
            f"Note{'s' if len(note_codes) > 1 else ''}: {'; '.join(n.detail for n in note_codes)}"
        )
    if factors:
        sentences.append(
            "Possible contributors: "
            + "; ".join(
                f"{phrase(c.code)} ({', '.join(phrase(r) for r in c.relates_to)})" for c in factors
            )
            + "."
        )
    if follow:
        sentences.append("Suggested follow-up: " + ", ".join(phrase(f.code) for f in follow) + ".")
    if any(n.code == "age_unknown" for n in notes):
        sentences.append("Age unknown: adult intervals assumed.")
    return " ".join(s if s.endswith(".") else s + "." for s in sentences)
