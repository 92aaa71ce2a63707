"""Request-body parsing in the order API.md fixes: 413, 415, 400, then 422."""

from __future__ import annotations

import re
from typing import Any, NoReturn

import flask_smorest
import marshmallow as ma
from flask import current_app
from webargs.flaskparser import FlaskParser

from labinterp.api.jsonio import loads
from labinterp.api.problems import Problem
from labinterp.schemas.messages import flatten_messages

JSON_TYPES = ("application/json", "application/fhir+json")


def is_json_mimetype(mimetype: str) -> bool:
    return mimetype in JSON_TYPES or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def read_body(request: Any, accepted: tuple[str, ...] | None = None) -> bytes:
    """The raw body, after the size (413) and Content-Type (415) checks.

    The size is checked on what arrives too, not only on Content-Length: a chunked body over
    the limit is a 413, never a silently truncated body.
    """
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > limit:
        raise Problem(
            413, f"the body is {request.content_length} bytes; the limit is {limit} bytes"
        )
    # a chunked body's size is known only once read, and 413 answers before 415
    if "body" not in request.environ.get("labinterp.cache", {}):
        data = read_at_most(request.environ["wsgi.input"], limit + 1) if _has_body(request) else b""
        if len(data) > limit:
            raise Problem(413, f"the body is more than {limit} bytes; the limit is {limit} bytes")
        request.environ.setdefault("labinterp.cache", {})["body"] = data
    ok = is_json_mimetype(request.mimetype) if accepted is None else request.mimetype in accepted
    wanted = "application/json" if accepted is None else " or ".join(accepted)
    if not ok:
        raise Problem(
            415,
            f"Content-Type {request.mimetype or '(none)'!r} is not supported here; send {wanted}",
        )
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise Problem(415, f"charset {charset!r} is not supported; send {wanted} in UTF-8")
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise Problem(415, f"Content-Encoding {encoding!r} is not supported; send the body as is")
    return bytes(request.environ["labinterp.cache"]["body"])


# a JSON escape of half a UTF-16 pair (U+D800 to U+DFFF)
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def lone_surrogate_at(value: Any, path: tuple[Any, ...] = ()) -> str | None:
    """The field path of the first string (or key) holding a lone surrogate, or None.

    Python keeps such a string, but no UTF-8 encoder takes it: stored, hashed or shown, it
    would fail far from the request that brought it (a 500 instead of a 400).
    """
    if isinstance(value, str):
        return _shown(path) if _has_surrogate(value) else None
    if not isinstance(value, dict | list):
        return None
    for key, item in value.items() if isinstance(value, dict) else enumerate(value):
        here = (*path, key)
        if isinstance(key, str) and _has_surrogate(key):
            return _shown(here)
        found = lone_surrogate_at(item, here)
        if found is not None:
            return found
    return None


def _shown(path: tuple[Any, ...]) -> str:
    """A field path fit for a message: a surrogate in a key is shown as its escape."""
    text = ".".join(map(str, path)) or "body"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _has_body(request: Any) -> bool:
    """HTTP/1.1: a request has a body only with a Content-Length or a chunked encoding (a
    server that does not end the input stream would otherwise be read until it times out)."""
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    return request.content_length is not None or chunked


def read_at_most(stream: Any, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(min(remaining, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class LabParser(FlaskParser):
    def _raw_load_json(self, req: Any) -> Any:
        data = read_body(req)
        try:
            document = loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Problem(400, f"the body is not valid JSON: {exc}") from None
        if SURROGATE_ESCAPE.search(data):  # cheap test first: most bodies have none
            where = lone_surrogate_at(document)
            if where is not None:
                raise Problem(
                    400,
                    f"the body is not valid JSON text: the string at {where} holds a lone "
                    "surrogate escape (\\ud800-\\udfff without its pair), which is no character",
                )
        return document

    def handle_error(
        self,
        error: ma.ValidationError,
        req: Any,
        schema: ma.Schema,
        *,
        error_status_code: int | None,
        error_headers: Any,
    ) -> NoReturn:
        messages: Any = error.messages
        if isinstance(messages, dict) and len(messages) == 1:  # webargs nests by location
            location, inner = next(iter(messages.items()))
            if location in ("json", "query", "querystring", "view_args", "path", "headers", "form"):
                messages = inner
        errors = flatten_messages(messages)
        raise Problem(
            error_status_code or 422,
            "the request is well-formed but not valid: "
            + "; ".join(f"{path}: {' '.join(msgs)}" for path, msgs in list(errors.items())[:5]),
            errors=errors,
        )


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = LabParser()

    def arguments(self, schema: Any, *args: Any, **kwargs: Any) -> Any:
        """As flask-smorest's, with one schema instance per view: given a class, webargs
        would build the schema (and each nested one, deep-copying their fields) on every
        request. Loading with a shared instance is thread-safe in marshmallow 4."""
        if isinstance(schema, type):
            schema = schema()
        return super().arguments(schema, *args, **kwargs)
