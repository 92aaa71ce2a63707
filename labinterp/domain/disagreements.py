"""Where the sending laboratory's own flag contradicts ours (a sodium of 138 flagged L inside
its own 136-145 range): said in the interpretation, both flags shown.

Applied to the engine's finished interpretation document when it is built (services.
interpretation), outside the engine's judging: the sender's flag never changes our judgement,
findings, status or priority; it adds ``sender_flag`` and ``sender_flag_disagrees`` to each
judged result the sender flagged, and a ``sender_flag_disagrees`` note for each contradiction,
for a clinician to check against the laboratory's report. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# the direction a flag says: low, high, normal, abnormal (either way); None: not a direction
# (IND, a SNOMED code, text we cannot read)
_DIRECTIONS = {
    "L": "low", "LL": "low", "LU": "low", "<": "low", "LOW": "low", "LX": "low",
    "H": "high", "HH": "high", "HU": "high", ">": "high", "HIGH": "high", "HX": "high",
    "N": "normal", "NORMAL": "normal",
    "A": "abnormal", "AA": "abnormal", "ABN": "abnormal", "ABNORMAL": "abnormal",
}  # fmt: skip
_OURS = {"L": "low", "LL": "low", "H": "high", "HH": "high", "N": "normal"}
_WORDS = {"low": "low", "high": "high", "normal": "normal", "abnormal": "abnormal"}


def direction(flag: str | None) -> str | None:
    """What a flag says: 'low', 'high', 'normal', 'abnormal', or None (not a direction)."""
    if flag is None:
        return None
    return _DIRECTIONS.get(flag.strip().upper())


def contradicts(sender: str | None, ours: str | None) -> bool:
    """The sender's flag says the opposite of ours: low or high where we find it within the
    interval or on the other side, normal where we find it out of range, abnormal where we
    find it normal. A difference of degree (L and LL) is not a contradiction; an
    indeterminate judgement (IND) contradicts nothing."""
    theirs, mine = direction(sender), _OURS.get(ours or "")
    if theirs is None or mine is None:
        return False
    if theirs == "abnormal":
        return mine == "normal"
    return theirs != mine


def with_sender_flags(
    body: dict[str, Any], sender_flags: Mapping[int, str | None]
) -> dict[str, Any]:
    """``body`` (an interpretation document) with the sender's flags of its results (by
    position) beside ours, and a note for each contradiction. ``body`` itself is unchanged."""
    if not any(sender_flags.values()):
        return body
    results, notes, disputed = [], list(body.get("notes", [])), []
    for result in body.get("results", []):
        flag = sender_flags.get(result.get("position", -1))
        if flag is None:
            results.append(result)
            continue
        disagrees = contradicts(flag, result.get("interpretation"))
        results.append({**result, "sender_flag": flag, "sender_flag_disagrees": disagrees})
        if disagrees:
            notes.append(_note(result, flag))
            disputed.append(str(result.get("analyte", "")).replace("_", " "))
    summary = str(body.get("summary", ""))
    if disputed:
        summary = (
            f"{summary} The sending laboratory's flag disagrees with labinterp's for "
            f"{', '.join(disputed)} (see the notes)."
        ).strip()
    return {**body, "results": results, "notes": notes, "summary": summary}


def _note(result: dict[str, Any], flag: str) -> dict[str, Any]:
    reported = result.get("reported") or {}
    interval = result.get("reference_range") or {}
    where = ""
    if interval.get("low") is not None or interval.get("high") is not None:
        source = "the laboratory's" if interval.get("source") == "lab" else "the ruleset's"
        where = (
            f" against {source} range {_number(interval.get('low'))}–"
            f"{_number(interval.get('high'))} {interval.get('unit', '')}".rstrip()
        )
    analyte = str(result.get("analyte", "")).replace("_", " ")
    said = _WORDS.get(direction(flag) or "", flag)
    return {
        "code": "sender_flag_disagrees",
        "analyte": result.get("analyte"),
        "detail": (
            f"{analyte.capitalize()} {_number(reported.get('value'))} "
            f"{reported.get('unit', '')}: the sending laboratory flagged it {flag} ({said}); "
            f"labinterp judges it {result.get('interpretation')}{where}. Check the "
            "laboratory's report: a flag from another range, or a transcription error."
        ),
    }


def _number(value: Any) -> str:
    return "?" if value is None else str(value)
