"""Every response carries the security headers; nothing that can hold patient data may be
cached; pages run no inline script."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

from tests.api.conftest import Tokens, auth, sample_panel

PAGE_POLICY_WORDS = ("default-src 'self'", "script-src 'self'", "object-src 'none'")


def _assert_common(response: Any, what: str) -> None:
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff", what
    assert headers["X-Frame-Options"] == "DENY", what
    assert headers["Referrer-Policy"] == "no-referrer", what
    policy = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy, what


def test_every_api_answer_errors_included_is_no_store_with_a_closed_policy(
    client: FlaskClient, tokens: Tokens
) -> None:
    posted = client.post("/api/v1/panels", json=sample_panel(), headers=auth(tokens.clinic))
    panel = posted.get_json()["id"]
    answers = {
        "202 POST": posted,
        "200 GET panel": client.get(f"/api/v1/panels/{panel}", headers=auth(tokens.clinic)),
        "200 list": client.get("/api/v1/panels?patient_id=P-0042", headers=auth(tokens.clinic)),
        "200 trend": client.get(
            "/api/v1/patients/P-0042/trend?analyte=magnesium", headers=auth(tokens.clinic)
        ),
        "401": client.get("/api/v1/panels"),
        "403": client.post("/api/v1/panels", json=sample_panel(), headers=auth(tokens.admin)),
        "404": client.get(
            "/api/v1/panels/00000000-0000-0000-0000-000000000000", headers=auth(tokens.clinic)
        ),
        "404 no route": client.get("/api/v1/patients/P-0042", headers=auth(tokens.clinic)),
        "405": client.delete("/api/v1/panels", headers=auth(tokens.clinic)),
        "409": client.post(
            "/api/v1/panels",
            json=sample_panel(collected_at="2026-01-01T00:00:00Z"),
            headers=auth(tokens.clinic),
        ),
        "422": client.post(
            "/api/v1/panels", json={"patient": {"id": "P-0042"}}, headers=auth(tokens.clinic)
        ),
        "400": client.post(
            "/api/v1/panels",
            data="{not json",
            content_type="application/json",
            headers=auth(tokens.clinic),
        ),
    }
    for what, response in answers.items():
        assert response.status_code == int(what.split()[0]), (what, response.status_code)
        _assert_common(response, what)
        assert response.headers["Cache-Control"] == "no-store", what
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'"), what


def test_operations_and_the_openapi_document_are_no_store_too(client: FlaskClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        response = client.get(path)
        assert response.status_code == 200, path
        _assert_common(response, path)
        assert response.headers["Cache-Control"] == "no-store", path
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_the_docs_page_has_a_strict_page_policy_and_no_inline_script(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    _assert_common(page, "/docs")
    policy = page.headers["Content-Security-Policy"]
    assert all(word in policy for word in PAGE_POLICY_WORDS), policy
    html = page.get_data(as_text=True)
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all("src=" in tag for tag in scripts), scripts  # every script a file
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html), "an inline script"
    for tag in scripts:  # and each of them is served here
        src = re.search(r'src="([^"]+)"', tag).group(1)  # type: ignore[union-attr]
        assert client.get(src).status_code == 200, src


def test_static_files_may_be_cached_but_carry_the_other_headers(client: FlaskClient) -> None:
    for path in ("/docs/assets/swagger-ui.css", "/static/swagger-init.js"):
        response = client.get(path)
        assert response.status_code == 200, path
        _assert_common(response, path)
        assert "no-store" not in response.headers.get("Cache-Control", ""), path
    missing = client.get("/docs/assets/no-such-file.js")
    assert missing.status_code == 404 and missing.headers["Cache-Control"] == "no-store"
