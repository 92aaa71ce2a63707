"""The Flask application factory."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, request

from labinterp import __version__, metrics
from labinterp.api import audit, fhir, fhir_read, operations, panels, reprocessing, review
from labinterp.api import hl7 as hl7_api
from labinterp.api.auth import install_access_control
from labinterp.api.fastpost import install_fast_post
from labinterp.api.headers import install_security_headers
from labinterp.api.jsonio import DecimalJSONProvider
from labinterp.api.openapi import LabApi, finish_spec
from labinterp.api.problems import Problem, register_problem_handlers
from labinterp.api.ratelimit import limiter
from labinterp.api.session import init_session
from labinterp.config import Settings, load_settings
from labinterp.runtime import Runtime, build_runtime, set_runtime
from labinterp.services.errors import (
    AccessionConflict,
    AlreadyExists,
    Conflict,
    InvalidInput,
    NotFound,
)
from labinterp.web import install_web

log = logging.getLogger(__name__)


class _LabFlask(Flask):
    """Flask, asking once per function whether it is a coroutine function: Flask asks on every
    call of every hook and view (``inspect`` on each, ten times a request), and labinterp has
    no async views."""

    _sync: dict[Any, bool] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        key = getattr(func, "__func__", func)  # a bound method: its function
        is_sync = self._sync.get(key)
        if is_sync is None:
            is_sync = self._sync[key] = super().ensure_sync(func) is func
        return func if is_sync else super().ensure_sync(func)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    settings = settings or (runtime.settings if runtime else load_settings())
    runtime = runtime or build_runtime(settings)
    set_runtime(runtime)

    app = _LabFlask(
        "labinterp",
        instance_path=str(settings.instance_path),
        static_folder="web/static",
        template_folder="web/templates",
    )
    app.json = DecimalJSONProvider(app)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_body,
        API_TITLE="labinterp",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        # Swagger UI's files are served by this app (from swagger-ui-bundle): /docs works offline
        OPENAPI_SWAGGER_UI_URL="/docs/assets/",
        API_SPEC_OPTIONS={
            "info": {
                "description": (
                    "Interprets serum electrolyte and vitamin panels (magnesium, potassium, "
                    "calcium, 25-OH vitamin D, B12 …) against versioned reference ranges, with the "
                    "twitching context a clinic reports. "
                    "Decision support for clinicians, not a diagnosis."
                )
            },
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}],
        },
    )
    app.extensions["labinterp"] = runtime
    limiter.configure(
        app,
        settings.rate_limit_per_minute,
        settings.broker_url if settings.broker_url.startswith(("redis://", "rediss://")) else None,
        settings.instance_path,
        failed_logins_per_minute=settings.auth_failure_limit_per_minute,
    )

    api = LabApi(app)  # errors documented as problem+json (openapi.py)
    api.register_blueprint(operations.ops)
    api.register_blueprint(operations.rules)
    api.register_blueprint(panels.blp)
    api.register_blueprint(review.blp)
    api.register_blueprint(audit.blp)
    api.register_blueprint(reprocessing.blp)
    api.register_blueprint(fhir.blp)
    api.register_blueprint(hl7_api.blp)  # HL7 v2 in (POST /hl7/v2)
    app.register_blueprint(fhir_read.blp)  # FHIR R4 out: its own errors (OperationOutcome)
    fhir_read.document_fhir_reads(api.spec.to_dict()["paths"])  # apispec's own dict
    finish_spec(api)  # 404/400/413/415, security [] on public routes
    _serve_swagger_assets(app)
    install_web(app, settings)  # the clinician's pages (labinterp/web)
    install_access_control(app)  # after the last route: deny by default (auth.py)
    install_security_headers(app)
    init_session(app)
    register_problem_handlers(app)  # after Api(): ours replace its JSON error bodies
    _count_requests(app)
    install_fast_post(app, runtime)  # POST /api/v1/panels in front of Flask (api/fastpost.py)

    @app.errorhandler(InvalidInput)
    def _invalid(exc: InvalidInput):
        return app.handle_user_exception(
            Problem(422, "the request is well-formed but not valid: " + str(exc), errors=exc.errors)
        )

    @app.errorhandler(NotFound)
    def _not_found(exc: NotFound):
        return app.handle_user_exception(Problem(404, str(exc)))

    @app.errorhandler(AccessionConflict)
    def _conflict(exc: AccessionConflict):
        return app.handle_user_exception(
            Problem(
                409,
                str(exc),
                extra={"panel_id": str(exc.panel_id), "differences": exc.differences},
            )
        )

    @app.errorhandler(Conflict)
    def _state_conflict(exc: Conflict):
        return app.handle_user_exception(
            Problem(409, str(exc), extra=exc.extra, kind="state-conflict")
        )

    @app.errorhandler(AlreadyExists)
    def _exists(exc: AlreadyExists):
        return app.handle_user_exception(Problem(409, str(exc)))

    return app


def _count_requests(app: Flask) -> None:
    """Requests by route (the URL rule: never a path with a patient's id in it) and status,
    and how long each took."""

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        started = g.get("started")
        route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
        metrics.HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        if started is not None:
            metrics.HTTP_LATENCY.labels(request.method, route).observe(
                time.perf_counter() - started
            )
        return response


def _serve_swagger_assets(app: Flask) -> None:
    from flask import redirect, send_from_directory
    from swagger_ui_bundle import swagger_ui_path

    @app.get("/docs/")
    def docs_with_slash():
        return redirect("/docs", code=301)

    @app.get("/docs/assets/<path:filename>")
    def swagger_assets(filename: str):
        return send_from_directory(swagger_ui_path, filename, max_age=86400)
