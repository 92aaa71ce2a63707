"""JSON in and out with exact decimals: a value sent as 1.10 is stored and shown as 1.10."""

from __future__ import annotations

from typing import Any

from flask.json.provider import JSONProvider

from labinterp.jsontext import dumps, loads

__all__ = ["DecimalJSONProvider", "dumps", "loads"]


class DecimalJSONProvider(JSONProvider):
    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.pop("default", None)
        return dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s)
