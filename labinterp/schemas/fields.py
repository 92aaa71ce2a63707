"""Fields that are stricter than marshmallow's defaults where a clinic's data needs it."""

from __future__ import annotations

import datetime as dt
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
        return number


class UtcDateTime(fields.DateTime):
    """ISO 8601 date-time; without an offset it is UTC (API.md)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.datetime:
        if not isinstance(value, str):
            raise ValidationError("must be an ISO 8601 date-time string")
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValidationError(
                f"'{value}' is not an ISO 8601 date-time (e.g. 2026-11-20T08:30:00Z)"
            ) from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.astimezone(dt.UTC)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite hands back naive UTC
            value = value.replace(tzinfo=dt.UTC)
        return str(value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"))


class StrictDate(fields.Date):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.date:
        if not isinstance(value, str):
            raise ValidationError("must be a date string YYYY-MM-DD")
        try:
            return dt.date.fromisoformat(value)
        except ValueError as exc:
            raise ValidationError(f"'{value}' is not a date (YYYY-MM-DD)") from exc
