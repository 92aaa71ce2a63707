"""POST /api/v1/panels is answered in front of Flask (labinterp/api/fastpost.py) when nothing
about the request is unusual. A clinic must not be able to tell: every answer, the new panel's
and the repeat's as much as each refusal's, is the one the Flask route gives, status, headers
and body; a refusal is still worded by Flask; a request is counted once against its rate limit
whichever path answers it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from werkzeug.test import Client, TestResponse

from labinterp.api.fastpost import PanelPostRoute
from tests.api.conftest import Tokens, auth, clinic_app, sample_panel

PATH = "/api/v1/panels"


@pytest.fixture
def flask_seen(app: Flask) -> list[str]:
    """The requests Flask's own machinery handled (a hook of the app's, not a stand-in: the
    first Flask runs for a request, before the access gate's)."""
    seen: list[str] = []

    @app.url_value_preprocessor
    def _seen(endpoint: str | None, values: dict[str, Any] | None) -> None:
        seen.append(f"{request.method} {request.path}")

    return seen


def _flask_only(app: Flask) -> Client:
    """A client of the Flask app alone, without the route in front of it."""
    route = app.wsgi_app
    assert isinstance(route, PanelPostRoute)
    return Client(route.flask_wsgi, TestResponse)


def _post(client: Any, body: Any, token: str | None, **headers: str) -> Any:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    sent = {"Content-Type": "application/json", **headers}
    if token is not None:
        sent.update(auth(token))
    return client.post(PATH, data=data, headers=sent)


def _headers(response: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in response.headers.items()}


def _json(response: Any) -> Any:
    return json.loads(response.get_data())  # the text as sent, by one parser for both


def _same_panel_answer(a: Any, b: Any) -> None:
    """Two answers to two new panels that differ only in their accession: equal in all but
    the panel's id, its accession and the times it was stored."""
    ha, hb = _headers(a), _headers(b)
    assert ha.keys() == hb.keys()
    for name in ha.keys() - {"location", "content-length"}:
        assert ha[name] == hb[name], name
    assert ha["location"] == f"{PATH}/{_json(a)['id']}"
    body_a, body_b = _json(a), _json(b)
    for body in (body_a, body_b):
        for key in ("id", "accession", "created_at", "updated_at"):
            body.pop(key, None)
    assert body_a == body_b


def test_a_new_panel_is_answered_before_flask_exactly_as_flask_answers_it(
    app: Flask, client: Any, tokens: Tokens, flask_seen: list[str]
) -> None:
    fast = _post(client, sample_panel(accession="FAST-1"), tokens.clinic)
    assert flask_seen == []  # the route in front answered it
    slow = _post(_flask_only(app), sample_panel(accession="FLASK-1"), tokens.clinic)
    assert flask_seen == [f"POST {PATH}"]
    assert fast.status_code == slow.status_code == 202
    _same_panel_answer(fast, slow)
    stored = client.get(fast.headers["Location"], headers=auth(tokens.clinic))
    assert stored.status_code == 200 and _json(stored) == _json(fast)


def test_a_repeat_is_answered_200_with_the_stored_panel_as_flask_answers_it(
    app: Flask, client: Any, tokens: Tokens, flask_seen: list[str]
) -> None:
    body = sample_panel(accession="REPEAT-1")
    first = _post(client, body, tokens.clinic)
    again = _post(client, body, tokens.clinic)
    by_flask = _post(_flask_only(app), body, tokens.clinic)
    assert first.status_code == 202
    assert again.status_code == by_flask.status_code == 200
    assert flask_seen == [f"POST {PATH}"]  # only the Flask-only client's
    assert _headers(again) == _headers(by_flask)
    assert again.get_data() == by_flask.get_data()
    assert _json(again)["id"] == _json(first)["id"]


def _refusals(tokens: Tokens) -> list[tuple[str, dict[str, Any]]]:
    valid = sample_panel(accession="REFUSED-1")
    invalid = sample_panel(accession="REFUSED-2")
    invalid["results"][0]["value"] = "a lot"
    unknown_unit = copy.deepcopy(valid)
    unknown_unit["results"][0]["unit"] = "furlongs"
    return [
        ("no token", {"body": valid, "token": None}),
        ("unknown token", {"body": valid, "token": "not-a-token"}),
        ("a clinician's token", {"body": valid, "token": tokens.clinician}),
        ("text/plain", {"body": valid, "token": tokens.clinic, "Content-Type": "text/plain"}),
        (
            "latin-1",
            {
                "body": valid,
                "token": tokens.clinic,
                "Content-Type": "application/json; charset=latin-1",
            },
        ),
        ("gzip", {"body": valid, "token": tokens.clinic, "Content-Encoding": "gzip"}),
        ("not JSON", {"body": b'{"accession": ', "token": tokens.clinic}),
        ("a key twice", {"body": '{"accession": "A", "accession": "B"}', "token": tokens.clinic}),
        ("lone surrogate", {"body": '{"accession": "\\ud800"}', "token": tokens.clinic}),
        ("not a panel", {"body": invalid, "token": tokens.clinic}),
        ("refused by the acceptance", {"body": unknown_unit, "token": tokens.clinic}),
    ]


@pytest.mark.parametrize("case", range(11))
def test_a_refusal_is_worded_by_flask_and_equal_to_its_answer(
    app: Flask, client: Any, tokens: Tokens, flask_seen: list[str], case: int
) -> None:
    name, spec = _refusals(tokens)[case]
    spec = dict(spec)
    body, token = spec.pop("body"), spec.pop("token")
    fast = _post(client, body, token, **spec)
    slow = _post(_flask_only(app), body, token, **spec)
    assert fast.status_code == slow.status_code >= 400, name
    assert fast.status_code != 500, name
    assert fast.mimetype == "application/problem+json", name
    assert flask_seen == [f"POST {PATH}"] * 2, name  # both worded by Flask
    assert _headers(fast) == _headers(slow), name
    assert fast.get_data() == slow.get_data(), name


def test_a_conflicting_accession_is_flasks_409_and_nothing_is_stored_twice(
    client: Any, tokens: Tokens, flask_seen: list[str]
) -> None:
    first = _post(client, sample_panel(accession="CONFLICT-1"), tokens.clinic)
    changed = sample_panel(accession="CONFLICT-1")
    changed["results"][0]["value"] = 0.41
    conflict = _post(client, changed, tokens.clinic)
    assert first.status_code == 202 and conflict.status_code == 409
    assert conflict.get_json()["panel_id"] == first.get_json()["id"]
    assert flask_seen == [f"POST {PATH}"]
    listed = client.get(f"{PATH}?accession=CONFLICT-1", headers=auth(tokens.clinic))
    assert listed.get_json()["total"] == 1


def test_a_body_over_the_limit_is_flasks_413(client: Any, tokens: Tokens) -> None:
    panel = sample_panel(accession="BIG-1")
    panel["context"]["notes"] = "x" * 2_000_000
    response = _post(client, panel, tokens.clinic)
    assert response.status_code == 413
    assert "limit" in response.get_json()["detail"]


def test_a_request_is_counted_once_against_its_rate_limit_whichever_path_answers(
    tmp_path: Path,
) -> None:
    _, client, token = clinic_app(
        {"LABINTERP_INSTANCE": str(tmp_path), "LABINTERP_RATE_LIMIT": "3"}
    )
    ok = _post(client, sample_panel(accession="RL-1"), token)
    invalid = sample_panel(accession="RL-2")
    invalid["results"][0]["value"] = "a lot"
    refused = _post(client, invalid, token)  # counted in front, worded by Flask
    last = _post(client, sample_panel(accession="RL-3"), token)
    over = _post(client, sample_panel(accession="RL-4"), token)
    assert [r.status_code for r in (ok, refused, last, over)] == [202, 422, 202, 429]
    assert [r.headers["RateLimit-Remaining"] for r in (ok, refused, last)] == ["2", "1", "0"]
    assert over.mimetype == "application/problem+json"
    assert int(over.headers["Retry-After"]) > 0
    listed = client.get(f"{PATH}?accession=RL-4", headers=auth(token))
    assert listed.status_code == 429  # the minute's budget is spent for reads too


def test_the_request_metrics_count_the_answers_given_in_front_of_flask(
    client: Any, tokens: Tokens
) -> None:
    def posted_202() -> float:
        text = client.get("/metrics").get_data(as_text=True)
        for line in text.splitlines():
            if line.startswith("labinterp_http_requests_total{") and (
                'route="/api/v1/panels"' in line and 'status="202"' in line
            ):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = posted_202()
    for n in range(3):
        assert _post(client, sample_panel(accession=f"M-{n}"), tokens.clinic).status_code == 202
    assert posted_202() == before + 3
