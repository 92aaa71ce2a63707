"""/docs works in a real browser under its strict Content-Security-Policy (no inline script):
Swagger UI renders every operation, and the browser reports no policy violation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import flask
import pytest
from flask import Flask

from labinterp.app import create_app
from labinterp.config import load_settings
from labinterp.db import upgrade_database
from labinterp.runtime import build_runtime
from tests.e2e.browser import render, serving

pytestmark = pytest.mark.browser


@pytest.fixture
def docs_app(tmp_path: Path) -> Iterator[Flask]:
    settings = load_settings({"LABINTERP_INSTANCE": str(tmp_path / "instance")})
    settings.instance_path.mkdir(parents=True)
    upgrade_database(settings.database_url)
    runtime = build_runtime(settings)
    yield create_app(runtime=runtime)
    runtime.engine.dispose()


def test_docs_renders_every_operation_with_no_policy_violation(docs_app: Flask) -> None:
    # every operation expanded: its parameters, schemas and examples are drawn too
    docs_app.config["OPENAPI_SWAGGER_UI_CONFIG"] = {"docExpansion": "full"}
    spec = docs_app.test_client().get("/openapi.json").get_json()
    # Swagger UI's element id for an operation without an operationId: its tag, its method
    # and its path with every other character than a letter or digit as _
    expected = {
        f"operations-{operation['tags'][0]}-{method}{re.sub(r'[^a-zA-Z0-9]', '_', path)}"
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in ("get", "put", "post", "patch", "delete")
    }
    with serving(docs_app) as url:
        page = render(f"{url}/docs")
    drawn = {name for name in expected if f'id="{name}"' in page.dom}
    print(
        f"\n/docs: {len(drawn)} of {len(expected)} operations drawn, {len(page.dom)} characters "
        f"of DOM, {len(page.console)} console message(s), "
        f"{len(page.policy_violations)} policy violation(s)"
    )
    assert page.policy_violations == [], page.policy_violations
    assert drawn == expected, sorted(expected - drawn)
    assert "operations-panels-post_api_v1_panels" in drawn and len(drawn) >= 10
    assert "Post a panel (asynchronous interpretation)" in page.dom


def test_the_inline_script_page_would_be_caught(docs_app: Flask) -> None:
    """The check above can fail: flask-smorest's own page (its inline <script>) under the
    same policy is refused by the browser, which says so, and renders no operation."""

    def inline_page() -> str:
        return flask.render_template(
            "swagger_ui.html",  # flask-smorest's template
            title="labinterp",
            spec_url="/openapi.json",
            swagger_ui_url="/docs/assets/",
            swagger_ui_config={},
        )

    docs_app.view_functions["api-docs.openapi_swagger_ui"] = inline_page
    with serving(docs_app) as url:
        page = render(f"{url}/docs", budget_ms=5000)
    assert any("inline script" in v for v in page.policy_violations), page.console
    assert 'data-path="/api/v1/panels"' not in page.dom
