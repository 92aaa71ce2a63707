"""JSON text with exact decimals, one encoding for the API and the database's JSON columns.

A value sent as 1.10 is parsed as Decimal("1.10"), stored as 1.10 and shown as 1.10; times
are written in UTC with a Z; NaN and Infinity, which JSON does not have, are refused. Written
with orjson (a Decimal goes in as an orjson.Fragment of its own text), read with simplejson
(orjson has no way to read a number as a Decimal).
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import orjson
import simplejson


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _fragment(value: Any) -> Any:
    """orjson's hook: a Decimal as the exact number it is (its text, unquoted), a time in UTC
    with a Z, the rest as :func:`_default` says."""
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    return _default(value)


_ORJSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def dumps(value: Any, **kwargs: Any) -> str:
    """JSON text of ``value``: with orjson (several times faster than the standard library),
    else (options orjson lacks, text it refuses such as a lone surrogate) with simplejson,
    which writes the same document."""
    if not kwargs:
        try:
            return orjson.dumps(value, default=_fragment, option=_ORJSON).decode()
        except (TypeError, orjson.JSONEncodeError):
            pass
    return simplejson.dumps(value, use_decimal=True, default=_default, ensure_ascii=False, **kwargs)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _integer(text: str) -> int | Decimal:
    # Python refuses to turn more than 4,300 digits into an int (with a message about its
    # internals): such a number stays a Decimal, and the schema says what is wrong with it
    return int(text) if len(text) <= 40 else Decimal(text)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:  # which of two values was meant is not ours to guess
            raise ValueError(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def loads(text: str | bytes) -> Any:
    """Parse JSON text; ValueError (with a message for a person) when it is not JSON."""
    try:
        return simplejson.loads(
            text,
            parse_float=Decimal,
            parse_int=_integer,
            parse_constant=_refuse_constant,
            object_pairs_hook=_object,
        )
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
