"""The review queue, a panel's page and its review form. Each view parses the request, calls
one service, and renders; clinic rules and audit are the services'."""

from __future__ import annotations

import uuid
from typing import Any

from flask import flash, redirect, render_template, request, url_for

from labinterp.api.auth import current_actor, page_roles
from labinterp.api.session import db, runtime
from labinterp.domain import Priority
from labinterp.models import Decision, ReviewStatus
from labinterp.services import review as review_service
from labinterp.services import review_pages
from labinterp.services.errors import Conflict, InvalidInput, NotFound
from labinterp.web import display
from labinterp.web.blueprint import web
from labinterp.web.trends import trend_view

PER_PAGE = 25
STATUS_WORDS = {
    ReviewStatus.PENDING.value: "Pending",
    ReviewStatus.REVIEWED.value: "Reviewed",
    review_service.ALL: "All",
}
DECISION_HELP = {
    Decision.ACKNOWLEDGED: "Seen; nothing more to do from this panel.",
    Decision.FOLLOW_UP: "Action needed: repeat, refer or call the patient (say what in the note).",
    Decision.DISMISSED: "Not clinically relevant (say why in the note).",
}


@web.get("/")
@page_roles("clinician", "admin")
def index() -> Any:
    return redirect(url_for("web.queue"))


def _page_number(text: str | None) -> int:
    return int(text) if text and text.isdigit() and 0 < int(text) < 100_000 else 1


@web.get("/review")
@page_roles("clinician")
def queue() -> Any:
    """The clinician's queue, most pressing first, with filter links counting the whole
    queue (research Q1, Q2, Q5)."""
    actor = current_actor()
    status = request.args.get("status", ReviewStatus.PENDING.value)
    if status not in review_service.QUEUE_STATUSES:
        status = ReviewStatus.PENDING.value
    priority = request.args.get("priority")
    chosen = Priority(priority) if priority in {p.value for p in Priority} else None
    clinic = request.args.get("clinic") or None
    page = _page_number(request.args.get("page"))
    try:
        result = review_service.review_queue(
            db(),
            actor,
            status=status,
            priorities=[chosen] if chosen else [],
            clinic=clinic,
            page=page,
            per_page=PER_PAGE,
            with_counts=True,
        )
    except InvalidInput as invalid:
        flash(" ".join(m for ms in invalid.errors.values() for m in ms), "error")
        return redirect(url_for("web.queue", status=status, priority=priority))
    pending = sum(result.counts.get(p.value, 0) for p in Priority)
    reviewed = result.counts.get(ReviewStatus.REVIEWED.value, 0)
    pages = max(1, -(-result.total // PER_PAGE))
    return render_template(
        "web/queue.html",
        queue=result,
        status=status,
        priority=chosen,
        clinic=clinic,
        page=page,
        pages=pages,
        per_page=PER_PAGE,
        status_counts={
            ReviewStatus.PENDING.value: pending,
            ReviewStatus.REVIEWED.value: reviewed,
            review_service.ALL: pending + reviewed,
        },
        status_words=STATUS_WORDS,
        clinics=sorted(actor.clinic_names.values()),
    )


def _panel_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound("panel") from None


def _render_panel(
    panel_id: uuid.UUID,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    stale: str | None = None,
    form: dict[str, str] | None = None,
) -> Any:
    rt = runtime()
    page = review_pages.read_panel_page(db(), current_actor(), rt.rulesets, panel_id)
    panel = page.panel
    interpretation = display.get(panel, "interpretation")
    names = _analyte_names()
    critical = display.critical_findings(interpretation)
    trends = [
        trend_view(
            t.analyte,
            names.get(t.analyte, display.words(t.analyte)),
            t.points,
            t.total,
            panel_id,
            critical,
        )
        for t in page.trends
    ]
    html = render_template(
        "web/panel.html",
        panel=panel,
        interpretation=interpretation,
        lines=display.result_lines(interpretation),
        critical=critical,
        names=names,
        trends=trends,
        history=display.timeline(page.interpretations, page.reviews),
        reviews=page.reviews,
        review_status=page.review_status,
        errors=errors or {},
        stale=stale,
        form=form or {},
        decisions=list(Decision),
        decision_help=DECISION_HELP,
    )
    return html, status


def _analyte_names() -> dict[str, str]:
    """Each analyte's display name ("25-OH vitamin D"), from the rulesets."""
    return {
        key: analyte.display
        for ruleset in runtime().rulesets.values()
        for key, analyte in ruleset.analytes.items()
    }


@web.get("/review/panels/<panel_id>")
@page_roles("clinician")
def panel(panel_id: str) -> Any:
    """One panel: summary, critical values, findings, context, trends, history, the form."""
    return _render_panel(_panel_id(panel_id))


@web.post("/review/panels/<panel_id>/reviews")
@page_roles("clinician")
def review(panel_id: str) -> Any:
    """Sign the panel off against the interpretation the page showed; then the next pending
    panel (Post/Redirect/Get). A refused review shows the page again with why, the note kept."""
    pid = _panel_id(panel_id)
    form = {
        "decision": request.form.get("decision", ""),
        "note": request.form.get("note", "")[:10_000],
    }
    errors: dict[str, str] = {}
    if form["decision"] not in {d.value for d in Decision}:
        errors["decision"] = "Choose a decision: acknowledged, follow up or dismissed."
    try:
        seen: uuid.UUID | None = uuid.UUID(request.form.get("interpretation_id", ""))
    except ValueError:
        seen = None
    stale = None
    if seen is None:
        stale = "The form did not say which interpretation you read. Read the panel again below."
    elif not errors:
        try:
            review_service.submit_review(
                db(),
                current_actor(),
                pid,
                Decision(form["decision"]),
                form["note"],
                seen_interpretation=seen,
            )
        except InvalidInput as invalid:
            errors = {key: " ".join(messages) for key, messages in invalid.errors.items()}
        except Conflict as conflict:
            stale = str(conflict)
        else:
            after = review_pages.after_review(db(), current_actor(), pid)
            decided = display.words(form["decision"])
            if after.next_panel_id is None:
                flash(f"Reviewed {after.accession} ({decided}). No panel is waiting.", "success")
                return redirect(url_for("web.queue"))
            flash(
                f"Reviewed {after.accession} ({decided}). This is the next pending panel.",
                "success",
            )
            return redirect(url_for("web.panel", panel_id=after.next_panel_id))
    return _render_panel(pid, status=409 if stale else 422, errors=errors, stale=stale, form=form)
