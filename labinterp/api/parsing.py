"""Request-body parsing in the order API.md fixes: 413, 415, 400, then 422."""

from __future__ import annotations

from typing import Any, NoReturn

import flask_smorest
import marshmallow as ma
from flask import current_app
from webargs.flaskparser import FlaskParser

from labinterp.api.jsonio import loads
from labinterp.api.problems import Problem, flatten_messages

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
    if "body" not in request.environ.get("labinterp.cache", {}):
        data = _read_at_most(request.environ["wsgi.input"], limit + 1)
        if len(data) > limit:
            raise Problem(413, f"the body is more than {limit} bytes; the limit is {limit} bytes")
        request.environ.setdefault("labinterp.cache", {})["body"] = data
    return bytes(request.environ["labinterp.cache"]["body"])


def _read_at_most(stream: Any, size: int) -> bytes:
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
            return loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Problem(400, f"the body is not valid JSON: {exc}") from None

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
