"""Calcium: ionized decides; else total calcium, albumin-corrected when albumin is low.

- Ionized calcium present: it alone gives hypo-/hypercalcemia. Total calcium then gives no
  finding — except a measured total beyond a critical limit that the ionized value does not
  explain (Choice: critical limits always apply, so it stays a critical finding, marked
  ``possibly_spurious``, and the panel is reviewed).
- Otherwise total calcium decides, corrected when albumin < 40 g/L (Payne 1973):
  corrected = Ca + 0.02 × (40 − albumin), albumin rounded to 0 decimals, result to 2. The
  finding's ``value`` is the corrected value, ``measured`` the measured one; a laboratory
  range is compared with the corrected value converted into the range's unit, and the open side
  of a one-sided laboratory range with the ruleset's interval, as for any value. LOINC 29265-6
  is already corrected and never corrected again (and needs no albumin).
- Critical limits apply to the measured total calcium.
- A low total whose corrected or ionized calcium is normal is pseudohypocalcemia (note), with
  ``check_ionized_calcium`` where ionized was not measured; a low total with neither albumin
  nor ionized calcium gets ``check_albumin``.
"""

from __future__ import annotations

from decimal import Decimal

from labinterp.domain.findings import FindingDraft, generic_draft, value_text
from labinterp.domain.judging import Judgement, side_of
from labinterp.domain.mechanisms import Outcome
from labinterp.domain.ruleset import Ruleset
from labinterp.domain.units import fmt, quantize

LOW_CODES = ("L", "LL")


def _ionized(total: Judgement, ionized: Judgement, out: Outcome) -> None:
    ion_draft = generic_draft(ionized)  # the ionized finding itself is drafted generically
    ion_side = ion_draft.side if ion_draft is not None else None
    reported_critical = False
    if total.critical is not None:
        total_side = "low" if total.critical.direction == "below" else "high"
        if total_side == ion_side and ionized.critical is None:
            # the ionized finding agrees: it carries the measured total's critical limit
            out.escalate(ionized.result.analyte, total.critical, _measured(total))
        elif total_side != ion_side:
            draft = generic_draft(total)
            assert draft is not None
            draft.possibly_spurious = ionized.code == "N"
            draft.graded = False
            draft.extra.append(
                f"Ionized calcium {value_text(ionized)} ({ionized.code}) decides calcium status; "
                "the measured total calcium is reported because it crossed a critical limit."
            )
            out.drafts.append(draft)
            reported_critical = True
    # a critical total reported as a finding is not also called "not hypocalcemia"
    if total.code in LOW_CODES and ionized.code == "N" and not reported_critical:
        out.note(
            "pseudohypocalcemia",
            "calcium",
            measured=value_text(total),
            basis="ionized",
            basis_value=value_text(ionized),
        )


def _measured(total: Judgement) -> str:
    return f"measured total calcium {value_text(total)}"


def corrected_calcium(
    total: Judgement, albumin: Judgement | None, ruleset: Ruleset
) -> tuple[Decimal, Decimal] | None:
    """(corrected, albumin used) when correction applies, else None."""
    rule = total.analyte.albumin_correction
    if rule is None or albumin is None or total.result.already_corrected:
        return None
    albumin_value = quantize(albumin.result.value, 0)
    if not albumin_value < rule.below:
        return None
    corrected = total.result.value + rule.factor * (rule.reference - albumin_value)
    return quantize(corrected, total.analyte.precision), albumin_value


def _corrected(
    total: Judgement, corrected: Decimal, albumin: Decimal, ruleset: Ruleset, out: Outcome
) -> None:
    rule = total.analyte.albumin_correction
    assert rule is not None
    side, interval = side_of(total, corrected)
    critical = total.critical
    critical_side = (
        None if critical is None else ("low" if critical.direction == "below" else "high")
    )
    finding_side = side or critical_side
    if finding_side is not None:
        lead = (
            f"Albumin-corrected calcium {value_text(total, corrected)} (measured "
            f"{value_text(total, joiner=' = {}')}; albumin {albumin} g/L; corrected = Ca + "
            f"{rule.factor} × ({rule.reference} − albumin), {ruleset.cite(rule.sources)})"
        )
        code = total.analyte.finding_low if finding_side == "low" else total.analyte.finding_high
        assert code is not None
        matches = critical is not None and critical_side == finding_side
        draft = FindingDraft(
            total,
            code,
            finding_side,
            interval if side is not None else total.interval,
            total.code if matches else ("L" if finding_side == "low" else "H"),
            value=corrected,
            measured=total.result.value,
            critical=critical if matches else None,
            graded=side is not None,
            lead=lead,
            within=side is None,
            sources=[ruleset.cite(rule.sources)],
            as_reported=False,
            # the limit is crossed by the measured value, not the corrected one
            critical_subject=_measured(total) if matches else None,
        )
        if side is None:
            draft.possibly_spurious = True
            draft.extra.append(
                "The corrected value is within the interval; the measured total "
                "calcium is reported because it crossed a critical limit."
            )
        out.drafts.append(draft)
    if total.code in LOW_CODES and side is None and finding_side is None:
        out.note(
            "pseudohypocalcemia",
            "calcium",
            measured=value_text(total),
            basis="albumin-corrected",
            basis_value=f"{fmt(corrected)} {total.result.unit}",
        )
    if total.code in LOW_CODES and side is None:
        out.follow_ups.append("check_ionized_calcium")


def calcium(total: Judgement, judged: dict[str, Judgement], ruleset: Ruleset, out: Outcome) -> None:
    """Findings of total calcium (the analyte with an albumin correction)."""
    ionized = judged.get(total.analyte.decided_by or "")
    if ionized is not None:
        _ionized(total, ionized, out)
        return
    rule = total.analyte.albumin_correction
    albumin = judged.get(rule.albumin_analyte) if rule is not None else None
    correction = corrected_calcium(total, albumin, ruleset)
    if correction is not None:
        _corrected(total, *correction, ruleset, out)
        return
    draft = generic_draft(total)
    if draft is not None:
        if total.result.already_corrected:
            draft.extra.append(
                "Reported by the laboratory as albumin-corrected (LOINC "
                f"{total.result.loinc}); not corrected again."
            )
        out.drafts.append(draft)
    if total.code in LOW_CODES and albumin is None and not total.result.already_corrected:
        out.follow_ups.append("check_albumin")
