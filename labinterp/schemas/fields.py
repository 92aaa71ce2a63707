"""Fields that are stricter than marshmallow's defaults where a clinic's data needs it."""

from __future__ import annotations

import datetime as dt
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import ValidationError, fields


class JsonNumber(fields.Decimal):
    """A JSON number, kept as the exact ``Decimal`` that was written ("1.10" stays 1.10).

    Strings and booleans are refused: a result value of ``"high"`` or ``true`` is an error,
    not something to guess at.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(allow_nan=False, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise ValidationError("must be a number")
        try:
            number = value if isinstance(value, Decimal) else Decimal(str(value))
        except InvalidOperation as exc:  # pragma: no cover - int/float always convert
            raise ValidationError("must be a number") from exc
        if not number.is_finite():
            raise ValidationError("must be a finite number")
        if number and not -MAX_EXPONENT <= number.adjusted() <= MAX_EXPONENT:
            # no lab value is 1e-999999999 or 1e999999999: refuse before anyone computes with it
            # (or prints it, a billion digits long)
            raise ValidationError(f"{_short(value)} is not a plausible laboratory number")
        if len(number.as_tuple().digits) > MAX_DIGITS:
            # kept verbatim as text of at most 40 characters beside the canonical value
            raise ValidationError(
                f"{_short(value)} has more than {MAX_DIGITS} significant digits; "
                "no laboratory reports a value that precisely"
            )
        return number


MAX_EXPONENT = 12  # |log10| of the largest and smallest magnitudes a value may have
MAX_DIGITS = 20  # significant digits a value may have


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:20] + "…" + text[-10:]


class Text(fields.String):
    """Free text kept verbatim (notes, identifiers): any character except NUL, which no
    database keeps (PostgreSQL refuses it in text)."""

    def __init__(self, **kwargs: Any):
        # the NUL rule, told in /openapi.json too
        metadata = {"pattern": "^[^\\u0000]*$", **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError("must not contain the NUL character")
        return text


class Identifier(Text):
    """An identifier a person will read back (accession, patient id): not blank, no
    surrounding spaces kept."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not text:
            raise ValidationError("must not be blank")
        if text.isprintable():  # no control (Cc), format or separator but the ASCII space;
            return text  # stripped and not blank: something visible (one C scan, the usual)
        if any(unicodedata.category(ch) == "Cc" for ch in text):
            raise ValidationError("must not hold control characters (tabs, line breaks …)")
        if all(unicodedata.category(ch) in _INVISIBLE for ch in text):
            # a zero-width space alone is an id nobody can read back or type
            raise ValidationError("must hold at least one visible character")
        return text


# Unicode categories with nothing to see: format characters (zero-width space, joiners, marks
# of direction) and separators
_INVISIBLE = frozenset({"Cf", "Zs", "Zl", "Zp"})


class UtcDateTime(fields.DateTime):
    """ISO 8601 date-time; without an offset it is UTC (API.md). Read as UTC.

    ``end_of_day``: a date alone ("2026-11-20") means the end of that day (an inclusive
    upper bound such as ``collected_to``); otherwise its start.
    """

    def __init__(self, *, end_of_day: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.end_of_day = end_of_day

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.datetime:
        parsed = parse_moment(value, allow_date=True)
        if self.end_of_day and _is_date_only(value):
            parsed += dt.timedelta(days=1, microseconds=-1)
        return _utc(parsed, value)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite hands back naive UTC
            value = value.replace(tzinfo=dt.UTC)
        return str(value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"))


class LocalDateTime(UtcDateTime):
    """A moment as the clinic wrote it, its UTC offset kept: the calendar date of collection
    (which decides age bands) is the date where the sample was taken. A time of day is
    required; without an offset it is UTC. Years before 1900 are refused. Shown in UTC."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.datetime:
        parsed = parse_moment(value, allow_date=False)
        if _utc(parsed, value).year < 1900:
            raise ValidationError(f"'{value}' is before 1900")
        return parsed


def _is_date_only(value: Any) -> bool:
    return isinstance(value, str) and "T" not in value.upper() and " " not in value.strip()


def parse_moment(value: Any, *, allow_date: bool) -> dt.datetime:
    """An aware datetime from ISO 8601 text (UTC when no offset is written)."""
    if not isinstance(value, str):
        raise ValidationError("must be an ISO 8601 date-time string")
    if not allow_date and _is_date_only(value):
        raise ValidationError(
            f"'{value}' has no time of day; send a date-time such as 2026-11-20T08:30:00Z"
        )
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError(
            f"'{_short(value)}' is not an ISO 8601 date-time (e.g. 2026-11-20T08:30:00Z)"
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def _utc(moment: dt.datetime, value: Any) -> dt.datetime:
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 has no UTC
        raise ValidationError(f"'{_short(value)}' is out of range") from None


class StrictDate(fields.Date):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.date:
        if not isinstance(value, str):
            raise ValidationError("must be a date string YYYY-MM-DD")
        try:
            return dt.date.fromisoformat(value)
        except ValueError as exc:
            raise ValidationError(f"'{value}' is not a date (YYYY-MM-DD)") from exc
