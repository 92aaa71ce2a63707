"""Every error as RFC 9457 problem+json, with field paths for validation errors."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from labinterp.redaction import describe_exception
from labinterp.schemas.messages import flatten_messages

log = logging.getLogger(__name__)

PROBLEM_MIMETYPE = "application/problem+json"
_TYPES = {
    400: "urn:labinterp:problem:malformed-body",
    401: "urn:labinterp:problem:unauthenticated",
    403: "urn:labinterp:problem:forbidden",
    404: "urn:labinterp:problem:not-found",
    409: "urn:labinterp:problem:accession-conflict",
    413: "urn:labinterp:problem:body-too-large",
    415: "urn:labinterp:problem:unsupported-media-type",
    422: "urn:labinterp:problem:invalid-input",
    405: "urn:labinterp:problem:method-not-allowed",
    429: "urn:labinterp:problem:rate-limited",
    500: "urn:labinterp:problem:internal-error",
    503: "urn:labinterp:problem:unavailable",
}


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        errors: Mapping[str, list[str]] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
        kind: str | None = None,
    ):
        super().__init__(detail)
        self.kind = kind  # the problem type's last word, where the status alone is ambiguous
        self.status = status
        self.detail = detail
        self.title = title
        self.errors = dict(errors) if errors else None
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def problem_response(problem: Problem) -> Response:
    title = problem.title or _title(problem.status)
    body: dict[str, Any] = {
        "type": f"urn:labinterp:problem:{problem.kind}"
        if problem.kind
        else _TYPES.get(problem.status, f"urn:labinterp:problem:http-{problem.status}"),
        "title": title,
        "status": problem.status,
        "detail": problem.detail,
    }
    if problem.errors:
        body["errors"] = problem.errors
    body.update(problem.extra)
    # text that no UTF-8 encoder takes (a lone surrogate echoed from the request) is written
    # as its JSON escape: an error about bad input never becomes a 500 itself
    text = current_app.json.dumps(body).encode("utf-8", "backslashreplace")
    response = current_app.response_class(text, status=problem.status, mimetype=PROBLEM_MIMETYPE)
    for key, value in problem.headers.items():
        response.headers[key] = value
    return response


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _from_http_exception(exc: HTTPException) -> Problem:
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages")
    errors = None
    if messages:
        # webargs nests messages by location ({"json": {...}, "query": {...}})
        if isinstance(messages, Mapping) and set(messages) <= {
            "json",
            "query",
            "querystring",
            "view_args",
            "path",
            "headers",
            "form",
        }:
            merged: dict[str, list[str]] = {}
            for location_messages in messages.values():
                merged.update(flatten_messages(location_messages))
            errors = merged
        else:
            errors = flatten_messages(messages)
    detail = exc.description or _title(status)
    if status == 422 and errors:
        detail = "the request is well-formed but not valid: " + "; ".join(
            f"{path}: {' '.join(msgs)}" for path, msgs in list(errors.items())[:5]
        )
    headers = {}
    if status == 405 and exc.get_response is not None:
        allow = exc.get_response().headers.get("Allow")
        if allow:
            headers["Allow"] = allow
    return Problem(status, detail, errors=errors, headers=headers)


def database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached or used at all (down, restarting, a connection lost,
    a statement timeout): a 503 the client may retry, never a 500."""
    from sqlalchemy.exc import DBAPIError, OperationalError, PendingRollbackError

    if isinstance(exc, OperationalError | PendingRollbackError):
        return True
    return isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or type(exc.orig).__name__ in ("InterfaceError", "QueryCanceled")
    )


def register_problem_handlers(app: Flask) -> None:
    @app.errorhandler(Problem)
    def _problem(problem: Problem) -> Response:
        return problem_response(problem)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        return problem_response(_from_http_exception(exc))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # the exception's type and where it was raised, never its message: that may quote the
        # request's values (patient data), and the route rather than the path (a patient id)
        route = request.url_rule.rule if request.url_rule is not None else "(no route)"
        if database_unavailable(exc):
            log.error(
                "database unavailable on %s %s: %s", request.method, route, describe_exception(exc)
            )
            return problem_response(
                Problem(
                    503,
                    "the database is unreachable; nothing was stored, retry later",
                    headers={"Retry-After": "5"},
                )
            )
        log.error("unhandled error on %s %s: %s", request.method, route, describe_exception(exc))
        return problem_response(Problem(500, "an unexpected error occurred; it has been logged"))
