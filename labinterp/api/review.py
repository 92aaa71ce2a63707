"""Review: the clinician's queue of flagged panels, and signing a panel off."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView

from labinterp.api.auth import current_actor, roles
from labinterp.api.panels import READERS, known_flags, page_body, page_of
from labinterp.api.parsing import Blueprint
from labinterp.api.session import db
from labinterp.domain import Priority
from labinterp.models import Decision
from labinterp.schemas.common import PageQuery
from labinterp.schemas.review import QueuePageOut, QueueQuery, ReviewIn, ReviewOut, ReviewPage
from labinterp.services import review as review_service

blp = Blueprint(
    "review",
    __name__,
    url_prefix="/api/v1",
    description="The clinician's review queue of flagged and indeterminate panels; sign-off.",
)


@blp.route("/review-queue")
class ReviewQueue(MethodView):
    @roles("clinician")
    @blp.arguments(QueueQuery, location="query")
    @blp.response(200, QueuePageOut)
    def get(self, query: dict[str, Any]) -> Any:
        """Flagged and indeterminate panels of the clinician's clinics, most pressing first

        Ordered critical, urgent, routine, then oldest collection first. `status` is
        `pending` (not reviewed against the newest interpretation; the default), `reviewed`,
        or `all`.
        """
        result = review_service.review_queue(
            db(),
            current_actor(),
            status=query["status"],
            priorities=[Priority(p) for p in query.get("priority") or []],
            flags=known_flags(query.get("flag") or []),
            clinic=query.get("clinic"),
            undelivered_alerts=query.get("alert") == "undelivered",
            page=query["page"],
            per_page=query["per_page"],
        )
        return page_body(result.items, result.total, query)


@blp.route("/panels/<uuid:panel_id>/reviews")
class PanelReviews(MethodView):
    @roles("clinician")
    @blp.arguments(ReviewIn)
    @blp.response(201, ReviewOut, description="Signed off against the newest interpretation")
    def post(self, body: dict[str, Any], panel_id: uuid.UUID) -> Any:
        """Review a panel (append-only)

        A `follow_up` or `dismissed` decision on a panel with a critical value needs a `note`.
        Send the `interpretation_id` you read: if a newer interpretation replaced it, the
        answer is 409 and nothing is recorded.
        """
        review = review_service.submit_review(
            db(),
            current_actor(),
            panel_id,
            Decision(body["decision"]),
            body.get("note"),
            seen_interpretation=body.get("interpretation_id"),
        )
        return review, 201, {"Location": f"/api/v1/panels/{panel_id}/reviews"}

    @roles(*READERS)
    @blp.arguments(PageQuery, location="query")
    @blp.response(200, ReviewPage)
    def get(self, query: dict[str, Any], panel_id: uuid.UUID) -> Any:
        """A panel's reviews, newest first"""
        return page_of(review_service.panel_reviews(db(), current_actor(), panel_id), query)
