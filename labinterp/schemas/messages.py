"""marshmallow's validation messages as the field paths and words a person reads (the API's
422 and the importer's error report say the same thing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages -> {"results.1.unit": [...]} (indexes from 0)."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            if key == "_schema":
                path = prefix or "body"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            for p, msgs in flatten_messages(value, path).items():
                flat.setdefault(p, []).extend(msgs)
    elif isinstance(messages, list | tuple) and all(isinstance(m, str) for m in messages):
        flat[prefix or "body"] = [_humane(m) for m in messages]
    elif isinstance(messages, list | tuple):
        for item in messages:
            for p, msgs in flatten_messages(item, prefix).items():
                flat.setdefault(p, []).extend(msgs)
    else:
        flat[prefix or "body"] = [_humane(str(messages))]
    return flat


def _humane(message: str) -> str:
    return {
        "Missing data for required field.": "is required",
        "Field may not be null.": "may not be null",
        "Not a valid string.": "must be a string",
        "Not a valid integer.": "must be a whole number",
        "Not a valid boolean.": "must be true or false",
        "Not a valid list.": "must be a list",
        "Invalid input type.": "must be a JSON object",
    }.get(message, message)
