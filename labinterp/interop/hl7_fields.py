"""HL7 v2 field values as labs write them: numbers (NM, SN), censored values, OBX-7 ranges,
TS/DTM times. Pure string work, no message structure (that is hl7.py's, with hl7apy)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)"
_NUMBER_RE = re.compile(rf"^{_NUMBER}$")


def number(text: str) -> Decimal | None:
    """A plain decimal number ("4.41", "+3", ".5"), else None (never "1e3", "NaN")."""
    text = text.strip()
    if not _NUMBER_RE.match(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        return None


@dataclass(frozen=True)
class Value:
    """An OBX-5 numeric value: exact, or censored (``<7``: below what the lab can measure),
    or not numeric at all (``reason`` says why)."""

    number: Decimal | None = None
    censored: str | None = None  # the value as sent, e.g. "<7" or "<^7"
    reason: str | None = None  # why there is no number (not censored)


_COMPARATORS = ("<=", ">=", "<>", "<", ">", "=")
_CENSORED_RE = re.compile(rf"^(<=|>=|<|>)\s*({_NUMBER})$")


def structured_numeric(components: list[str]) -> Value:
    """SN: comparator ^ num1 [^ separator ^ num2]. ``^182`` and ``=^182`` are 182; ``<^7`` is
    censored; ``^1^:^2`` (a ratio) and ``^10^-^20`` (a range) are not one number."""
    comparator = components[0].strip() if components else ""
    first = components[1].strip() if len(components) > 1 else ""
    separator = components[2].strip() if len(components) > 2 else ""
    second = components[3].strip() if len(components) > 3 else ""
    shown = "^".join(components).rstrip("^")
    if comparator and comparator not in _COMPARATORS:
        # "<7" sent in the first component, with no number after it: a censored NM written as SN
        alone = censored_text(comparator) if not first else None
        if alone is not None:
            return alone
        return Value(reason=f"'{shown}' has an unknown comparator {comparator!r}")
    if separator or second:
        return Value(reason=f"'{shown}' is a ratio or range, not one value")
    value = number(first)
    if value is None:
        return Value(reason=f"'{shown}' holds no number")
    if comparator in ("", "="):
        return Value(number=value)
    return Value(censored=shown)


def censored_text(text: str) -> Value | None:
    """``<7``, ``>= 2000`` written as plain text (in an NM or ST OBX-5): censored; else None."""
    if _CENSORED_RE.match(text.strip()):
        return Value(censored=text.strip())
    return None


def plain_numeric(text: str) -> Value:
    """NM (or ST holding a number): a number, a censored ``<7``, or not numeric."""
    value = number(text)
    if value is not None:
        return Value(number=value)
    censored = censored_text(text)
    if censored is not None:
        return censored
    return Value(reason=f"'{text}' is not a number")


_BOUNDS_RE = re.compile(
    rf"^\s*({_NUMBER})\s*(?:-|–|_|\bto\b|\.\.)\s*({_NUMBER})\s*$", re.IGNORECASE
)
_UPPER_RE = re.compile(rf"^\s*(?:<|<=|≤)\s*({_NUMBER})\s*$")
_LOWER_RE = re.compile(rf"^\s*(?:>|>=|≥)\s*({_NUMBER})\s*$")


def reference_range(text: str) -> dict[str, Decimal | str]:
    """OBX-7 as the API's ``reference_range``: ``3.5-5.1``, ``4.3 to 6.2``, ``70_105`` give low
    and high, ``<7.2`` a high alone, ``>2`` a low alone; anything else is kept as text."""
    text = text.strip()
    if not text:
        return {}
    bounds = _BOUNDS_RE.match(text)
    if bounds:
        low, high = number(bounds.group(1)), number(bounds.group(2))
        if low is not None and high is not None:
            return {"low": low, "high": high}
    upper = _UPPER_RE.match(text)
    if upper:
        high = number(upper.group(1))
        if high is not None:
            return {"high": high}
    lower = _LOWER_RE.match(text)
    if lower:
        low = number(lower.group(1))
        if low is not None:
            return {"low": low}
    return {"text": text}


_TS_RE = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?([+-]\d{4})?$"
)


class BadTime(ValueError):
    """A TS/DTM that is not one; the message says what was expected."""


def timestamp(text: str, zone: dt.tzinfo) -> dt.datetime | None:
    """TS/DTM ``YYYYMMDDHHMM[SS[.S…]][+/-ZZZZ]`` as an aware datetime; without an offset it is
    read in ``zone`` (the clinic's time zone). Empty: None. A date without a time of day is
    refused (the collection time decides the date of collection and so the age band)."""
    text = text.strip()
    if not text:
        return None
    match = _TS_RE.match(text)
    if not match:
        raise BadTime(f"'{text}' is not an HL7 date-time (YYYYMMDDHHMM[SS][+/-ZZZZ])")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if hour is None:
        raise BadTime(f"'{text}' has no time of day; send at least YYYYMMDDHHMM")
    try:
        tz: dt.tzinfo = zone
        if offset is not None:
            sign = -1 if offset[0] == "-" else 1
            minutes = int(offset[1:3]) * 60 + int(offset[3:5])
            tz = dt.timezone(sign * dt.timedelta(minutes=minutes))
        micro = int((fraction or "0").ljust(6, "0")[:6])
        return dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute or 0),
            int(second or 0),
            micro,
            tzinfo=tz,
        )
    except ValueError as exc:
        raise BadTime(f"'{text}' is not a valid date-time: {exc}") from None


def date_part(text: str) -> dt.date | None:
    """The date of a TS/DTM (PID-7's birth date): its first 8 digits. Empty: None."""
    text = text.strip()
    if not text:
        return None
    if not re.match(r"^\d{8}", text):
        raise BadTime(f"'{text}' is not an HL7 date (YYYYMMDD)")
    try:
        return dt.date(int(text[0:4]), int(text[4:6]), int(text[6:8]))
    except ValueError as exc:
        raise BadTime(f"'{text}' is not a valid date: {exc}") from None


_ESCAPES = {"F": "|", "S": "^", "T": "&", "R": "~", "E": "\\"}


def unescape(text: str, escape: str = "\\", separators: dict[str, str] | None = None) -> str:
    """ER7 escape sequences (``\\T\\`` for ``&`` …) read back; highlighting (``\\H\\``,
    ``\\N\\``) dropped, other sequences kept as written."""
    if escape not in text:
        return text
    chars = {**_ESCAPES, "E": escape, **(separators or {})}
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == escape:
            end = text.find(escape, i + 1)
            if end != -1:
                code = text[i + 1 : end]
                if code in chars:
                    out.append(chars[code])
                    i = end + 1
                    continue
                if code in ("H", "N"):
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


def escape(text: str, separators: str = "|^~\\&") -> str:
    """Text made safe to put in one ER7 component (our ACK's messages): separators escaped,
    line breaks made spaces."""
    field, component, repetition, esc, sub = (separators[i] for i in range(5))
    text = " ".join(text.split())
    out = text.replace(esc, f"{esc}E{esc}")
    for char, code in ((field, "F"), (component, "S"), (sub, "T"), (repetition, "R")):
        out = out.replace(char, f"{esc}{code}{esc}")
    return out
