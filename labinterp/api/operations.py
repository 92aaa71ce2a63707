"""Liveness, readiness, metrics and rulesets."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response, current_app
from flask.views import MethodView
from marshmallow import fields, validate

from labinterp import metrics
from labinterp.api.auth import current_actor, roles
from labinterp.api.parsing import Blueprint
from labinterp.api.problems import Problem
from labinterp.api.session import db, runtime
from labinterp.db import migration_heads
from labinterp.schemas.common import PageQuery
from labinterp.schemas.output import HealthOut, ReadyOut, RulesetPage
from labinterp.services import dispatch, readiness, reading
from labinterp.services import rulesets as ruleset_service

ops = Blueprint("operations", __name__, description="Health, readiness and metrics.")
rules = Blueprint(
    "rulesets", __name__, url_prefix="/api/v1", description="Versioned reference-range rulesets."
)


@ops.route("/healthz")
class Health(MethodView):
    @ops.response(200, HealthOut)
    def get(self) -> Any:
        """The process is alive"""
        return {"status": "ok"}


@ops.route("/readyz")
class Ready(MethodView):
    @ops.response(200, ReadyOut)
    @ops.alt_response(503, description="The database or the broker is unreachable")
    @ops.doc(responses={503: "NOT_READY"})  # problem+json with its checks (openapi.py)
    def get(self) -> Any:
        """Database (reachable, schema current) and broker, each reported separately"""
        database = readiness.check_database(db(), migration_heads())
        broker_ok, broker_detail = dispatch.broker_reachable(runtime().celery)
        checks = {
            "database": database.as_dict(),
            "broker": {"ok": broker_ok, "detail": broker_detail},
        }
        if database.ok and broker_ok:
            return {"status": "ready", "checks": checks}
        down = " and ".join(f"{name} {c['detail']}" for name, c in checks.items() if not c["ok"])
        raise Problem(
            503,
            f"not ready: {down}",
            extra={"checks": checks},
            headers={"Retry-After": "5"},
        )


@ops.route("/metrics")
class Metrics(MethodView):
    @ops.doc(
        responses={
            200: {
                "description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        }
    )
    def get(self) -> Response:
        """Prometheus metrics"""
        queued, age = reading.queue_state(db(), dt.datetime.now(dt.UTC))
        body, content_type = metrics.exposition(metrics.QueueCollector(queued, age))
        return current_app.response_class(body, content_type=content_type)


def _ruleset_documents(page: int = 1, per_page: int | None = None) -> dict[str, Any]:
    """Every ruleset, paged as every list is (API.md); ``active`` names the active version."""
    rt = runtime()
    active = ruleset_service.active_version(db(), rt.settings.default_ruleset)
    items = [
        {**rs.describe(), "active": version == active}
        for version, rs in sorted(rt.rulesets.items())
    ]
    size = per_page or max(len(items), 1)
    start = (page - 1) * size
    return {
        "items": items[start : start + size],
        "total": len(items),
        "page": page,
        "per_page": size,
        "active": active,
    }


class RulesetQuery(PageQuery):
    per_page = fields.Integer(
        validate=validate.Range(min=1, max=200),
        metadata={"description": "default: every ruleset on one page"},
    )


@rules.route("/rulesets")
class Rulesets(MethodView):
    @roles("clinic", "clinician", "admin")
    @rules.arguments(RulesetQuery, location="query")
    @rules.response(200, RulesetPage)
    def get(self, query: dict[str, Any]) -> Any:
        """Every ruleset version shipped, and which one is active"""
        return _ruleset_documents(query["page"], query.get("per_page"))


@rules.route("/rulesets/<string:version>/activate")
class ActivateRuleset(MethodView):
    @roles("admin")
    @rules.response(200, RulesetPage)
    def post(self, version: str) -> Any:
        """Make a ruleset version the one new panels are interpreted with"""
        rt = runtime()
        ruleset_service.activate(db(), current_actor(), rt.rulesets, version)
        rt.active_ruleset.forget()  # this process at once; the others within seconds
        return _ruleset_documents()
