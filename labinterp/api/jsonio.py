"""JSON in and out with exact decimals: a value sent as 1.10 is stored and shown as 1.10."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import simplejson
from flask.json.provider import JSONProvider


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


def dumps(value: Any, **kwargs: Any) -> str:
    return simplejson.dumps(value, use_decimal=True, default=_default, ensure_ascii=False, **kwargs)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def loads(text: str | bytes) -> Any:
    return simplejson.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)


class DecimalJSONProvider(JSONProvider):
    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.pop("default", None)
        return dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s)
