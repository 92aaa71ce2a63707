"""Deny by default: every endpoint needs a token with a role, except an explicit public list;
the clinician's pages need a signed-in session instead (without one: a redirect to sign-in).

The test walks the app's own URL map, so a route added tomorrow is checked without anyone
remembering to add it here: it answers 401 without a token, or the app refuses to start.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask
from werkzeug.routing import Rule

from labinterp.api.auth import access_table
from tests.api.conftest import Tokens, assert_problem, auth

# What anyone may call without a token, by route: health, readiness, metrics, the OpenAPI
# document, the docs page and its files, Flask's static files. Written out here, apart from
# the code's own list, so that widening that list fails this test.
PUBLIC_RULES = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/",
    "/docs/assets/<path:filename>",
    "/static/<path:filename>",
    "/sign-in",  # the sign-in page (its POST needs the page's CSRF token)
    "/fhir/r4/metadata",  # the FHIR CapabilityStatement
}
# the clinician's pages (labinterp/web): signed in by session cookie, never by token
PAGE_RULES = {
    "/",
    "/review",
    "/review/panels/<panel_id>",
    "/review/panels/<panel_id>/reviews",
    "/sign-out",
}
# a plausible value for each kind of path variable (werkzeug converter class name)
_VALUES = {
    "UUIDConverter": str(uuid.uuid4()),
    "PathConverter": "P-0042/x",
    "UnicodeConverter": "2026.1",
    "IntegerConverter": "1",
}
_FILES = {
    "/docs/assets/<path:filename>": "swagger-ui.css",
    "/static/<path:filename>": "swagger-init.js",
}


def _path(rule: Rule) -> str:
    """The rule's path with each variable replaced by a plausible value."""
    values: dict[str, Any] = {}
    for name, converter in rule._converters.items():
        values[name] = _FILES.get(rule.rule) or _VALUES[type(converter).__name__]
    return rule.build(values, append_unknown=False)[1]  # type: ignore[index]


def _assert_sign_in_first(response: Any) -> None:
    assert response.status_code == 302, response.status_code
    assert response.headers["Location"].startswith("/sign-in")


def _assert_public(response: Any, rule: Rule, method: str) -> None:
    if rule.rule == "/sign-in" and method == "POST":  # no CSRF token: refused, nothing done
        assert response.status_code == 400
    else:
        assert response.status_code < 400, f"{method} {rule.rule}: {response.status_code}"


def _assert_401(response: Any, method: str, rule: Rule) -> None:
    # FHIR out (labinterp/api/fhir_read.py) answers its errors as an OperationOutcome
    fhir = rule.endpoint.startswith("fhir_read.")
    if method == "HEAD":  # the same answer, without its body
        assert response.status_code == 401 and response.mimetype == (
            "application/fhir+json" if fhir else "application/problem+json"
        )
    elif fhir:
        assert response.status_code == 401 and response.mimetype == "application/fhir+json"
        outcome = response.get_json(force=True)
        assert outcome["resourceType"] == "OperationOutcome"
        assert "token" in outcome["issue"][0]["diagnostics"]
    else:
        assert "token" in assert_problem(response, 401)["detail"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def _walk(app: Flask) -> list[tuple[Rule, str, str]]:
    """(rule, method, path) for every method of every rule."""
    return [
        (rule, method, _path(rule))
        for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule)
        for method in sorted(rule.methods or ())
    ]


def test_every_route_but_the_public_list_answers_401_without_a_token(
    app: Flask, capsys: pytest.CaptureFixture[str]
) -> None:
    client = app.test_client()
    walked = _walk(app)
    refused: list[str] = []
    public: set[str] = set()
    pages: list[str] = []
    for rule, method, path in walked:
        response = client.open(path, method=method)
        if rule.rule in PAGE_RULES:
            _assert_sign_in_first(response)
            pages.append(f"{method} {rule.rule}")
        elif response.status_code == 401:
            _assert_401(response, method, rule)
            refused.append(f"{method} {rule.rule}")
        else:
            public.add(rule.rule)
        if rule.rule in PUBLIC_RULES:
            _assert_public(response, rule, method)
    report = (
        f"walked {len({r.rule for r, _, _ in walked})} rules, {len(walked)} (rule, method) "
        f"pairs: {len(refused)} answered 401 without a token, {len(pages)} pages sent to "
        f"sign-in, {len(public)} public rules "
        f"({', '.join(sorted(public))})"
    )
    with capsys.disabled():  # shown with or without -s
        print(f"\n{report}")
    assert public == PUBLIC_RULES, report
    protected = [(r, m) for r, m, _ in walked if r.rule not in PUBLIC_RULES | PAGE_RULES]
    assert len(refused) == len(protected), report
    assert {r.rule for r, _, _ in walked} >= PAGE_RULES, report  # every method of every other rule
    # the API's own routes were walked, not an empty map
    assert {"POST /api/v1/panels", "GET /api/v1/patients/<path:patient_id>/trend"} <= set(
        refused
    ), report


def test_a_garbage_token_is_401_on_every_route_that_needs_one(app: Flask) -> None:
    client = app.test_client()
    for rule, method, path in _walk(app):
        if rule.rule in PUBLIC_RULES:
            continue
        response = client.open(path, method=method, headers=auth("li_not-a-real-token"))
        if rule.rule in PAGE_RULES:  # a token means nothing to a page
            _assert_sign_in_first(response)
        else:
            _assert_401(response, method, rule)


def test_an_app_with_a_route_that_declares_no_roles_refuses_to_start(app: Flask) -> None:
    app.add_url_rule("/api/v1/oops", "oops", lambda: "everyone's data")
    with pytest.raises(RuntimeError, match=r"GET /api/v1/oops \(oops\)"):
        access_table(app)


def test_a_route_added_after_start_is_refused_to_every_role(app: Flask, tokens: Tokens) -> None:
    """The gate denies what it has no declaration for, even a route the start-up check never
    saw: 401 without a token, 403 with any token."""
    app.add_url_rule("/api/v1/oops", "oops", lambda: "everyone's data")
    client = app.test_client()
    assert_problem(client.get("/api/v1/oops"), 401)
    for token in (tokens.admin, tokens.clinic, tokens.clinician):
        assert_problem(client.get("/api/v1/oops", headers=auth(token)), 403)


def test_roles_still_decide_who_may_call_a_view(app: Flask, tokens: Tokens) -> None:
    client = app.test_client()
    activate = "/api/v1/rulesets/2026.1/activate"
    body = assert_problem(client.post(activate, headers=auth(tokens.clinic)), 403)
    assert "it needs the role admin" in body["detail"]
    assert client.post(activate, headers=auth(tokens.admin)).status_code == 200
    assert client.get("/api/v1/rulesets", headers=auth(tokens.clinician)).status_code == 200
