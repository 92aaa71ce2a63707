"""The audit trail: who read or changed what, when, from where (admins only)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from labinterp.api.auth import current_actor, roles
from labinterp.api.panels import page_body
from labinterp.api.parsing import Blueprint
from labinterp.api.session import db
from labinterp.repositories.audit import AuditFilter
from labinterp.schemas.audit import AuditPage, AuditQuery
from labinterp.services import audit

blp = Blueprint(
    "audit",
    __name__,
    url_prefix="/api/v1",
    description="The append-only audit trail of reads and changes.",
)


@blp.route("/audit")
class AuditTrail(MethodView):
    @roles("admin")
    @blp.arguments(AuditQuery, location="query")
    @blp.response(200, AuditPage)
    def get(self, query: dict[str, Any]) -> Any:
        """Who read or changed what, when and from where, newest first

        Every read of a panel (single, list, trend, queue), every review, sign-in (and failed
        sign-in), token, user, clinic and webhook change and ruleset activation is one event;
        a read of several panels is one event naming them in `panel_ids`. This read is
        recorded too (`audit.read`).
        """
        where = AuditFilter(
            panel_id=query.get("panel_id"),
            actor=query.get("actor"),
            actions=tuple(query.get("action") or ()),
            since=query.get("since"),
            until=query.get("until"),
        )
        items, total = audit.read_trail(
            db(), current_actor(), where, query["page"], query["per_page"]
        )
        return page_body(items, total, query)
