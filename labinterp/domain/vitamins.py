"""Vitamin D and B12: guideline decision bands decide the finding, whatever a laboratory
range says (a laboratory range only sets the result's L/N/H).

B12 (NICE NG239, from 16 y): < 133 pmol/L deficiency; 133–258 indeterminate, where MMA
decides — above its limit: deficiency; within it: no finding and the note
``b12_deficiency_unlikely``; not measured: ``b12_borderline``. Where no decision band applies
(B12 under 16 y) a laboratory range, if given, judges the value like any other analyte.
"""

from __future__ import annotations

from labinterp.domain.ages import place
from labinterp.domain.findings import FindingDraft, generic_draft, title, value_text
from labinterp.domain.judging import Interval, Judgement, Patient
from labinterp.domain.mechanisms import Outcome
from labinterp.domain.ruleset import DecisionBand, Ruleset


def band_text(band: DecisionBand, unit: str) -> str:
    if band.from_ is not None and band.below is not None:
        return f"{band.from_} to < {band.below} {unit}"
    if band.from_ is not None and band.to is not None:
        return f"{band.from_}–{band.to} {unit}"
    if band.below is not None:
        return f"< {band.below} {unit}"
    if band.above is not None:
        return f"> {band.above} {unit}"
    if band.from_ is not None:
        return f"≥ {band.from_} {unit}"
    return f"≤ {band.to} {unit}"


def adequate_interval(j: Judgement, ruleset: Ruleset) -> Interval:
    assert j.analyte.decision is not None
    band = j.analyte.decision.adequate
    return Interval(
        band.low, band.high, j.analyte.canonical_unit, "ruleset", ruleset.cite(band.sources)
    )


def _side(band: DecisionBand) -> str:
    return "high" if band.above is not None else "low"


def _draft(
    j: Judgement,
    band: DecisionBand,
    ruleset: Ruleset,
    code: str | None = None,
    extra: list[str] | None = None,
) -> FindingDraft:
    side = _side(band)
    lab_note = []
    if j.interval is not None and j.interval.source == "lab":
        lab_note.append(
            f"The laboratory's range ({j.interval.text()}, result {j.code}) sets the "
            "result's flag only; the guideline bands decide the finding."
        )
    code = code or band.code
    rule = (
        f"{title(band.code)} band: {band_text(band, j.analyte.canonical_unit)} "
        f"({ruleset.cite(band.sources)})."
    )
    return FindingDraft(
        j,
        code,
        side,
        adequate_interval(j, ruleset),
        "L" if side == "low" else "H",
        extra=[rule, *(extra or []), *lab_note],
        sources=[ruleset.cite(band.sources)],
        lead=f"{j.analyte.display} {value_text(j)}",
    )


def decision_applies(j: Judgement, patient: Patient) -> bool:
    d = j.analyte.decision
    return d is not None and place(patient.age, d.age_min, d.age_max) == "inside"


def matching_band(j: Judgement) -> DecisionBand | None:
    assert j.analyte.decision is not None
    return next((b for b in j.analyte.decision.bands if b.contains(j.result.value)), None)


def _mma_verdict(mma: Judgement | None) -> str:
    """'above', 'within' or 'unknown' (not measured, or no limit for the age)."""
    if mma is None or mma.code == "IND":
        return "unknown"
    return "above" if mma.code in ("H", "HH") else "within"


def _limit_of(mma: Judgement) -> str:
    if mma.interval is None or mma.interval.high is None:
        return "its limit"
    source = "laboratory" if mma.interval.source == "lab" else mma.interval.citation
    return f"its limit {mma.interval.high} {mma.interval.unit} ({source})"


def decision_finding(
    j: Judgement, judged: dict[str, Judgement], patient: Patient, ruleset: Ruleset, out: Outcome
) -> None:
    """Guideline bands; an indeterminate band is decided by its ``confirm_with`` analyte."""
    if not decision_applies(j, patient):
        draft = generic_draft(j)
        if draft is not None:
            out.drafts.append(draft)
        return
    band = matching_band(j)
    if band is None:
        return
    if not band.confirm_with:
        out.drafts.append(_draft(j, band, ruleset))
        return
    mma = judged.get(band.confirm_with)
    verdict = _mma_verdict(mma)
    mma_text = "" if mma is None else f"{mma.analyte.display} {value_text(mma)}"
    if verdict == "above":
        assert mma is not None
        deficiency = next(
            b
            for b in j.analyte.decision.bands  # type: ignore[union-attr]
            if b.below is not None and not b.confirm_with
        )
        out.drafts.append(
            _draft(
                j,
                band,
                ruleset,
                code=deficiency.code,
                extra=[
                    f"{mma_text} is above {_limit_of(mma)}, which confirms deficiency in the "
                    f"indeterminate band ({ruleset.cite(band.sources)})."
                ],
            )
        )
    elif verdict == "within":
        assert mma is not None
        out.note("b12_deficiency_unlikely", j.result.analyte, b12=value_text(j), mma=mma_text)
    else:
        extra = (
            []
            if mma is None
            else [f"{mma_text} has no limit for this patient's age, so it cannot decide."]
        )
        out.drafts.append(_draft(j, band, ruleset, extra=extra))
