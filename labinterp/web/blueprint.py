"""The clinician's web pages: the blueprint, its session cookie and CSRF settings, and how it
answers what the access gate (api/auth.py) refuses — as pages, not problem+json.

Pages are server-rendered and work without JavaScript. Every form carries a CSRF token
(Flask-WTF), checked for this blueprint only: the JSON API authenticates with bearer tokens,
never cookies, so a forged cross-site request carries nothing it would accept.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, flash, g, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect

from labinterp.api.auth import PageForbidden, SignInRequired
from labinterp.api.problems import Problem
from labinterp.config import Settings
from labinterp.domain import FindingStatus, Priority
from labinterp.models import Decision, ReviewStatus
from labinterp.services.errors import NotFound
from labinterp.web import display

web = Blueprint("web", __name__)
csrf = CSRFProtect()
SESSION_HOURS = 8  # a signed-in browser stays signed in this long after its last request


def configure_web(app: Flask, settings: Settings) -> None:
    """Session cookie and CSRF settings, template helpers. Call before registering ``web``."""
    app.config.update(
        # only the web blueprint's forms are checked (its before_request below)
        WTF_CSRF_CHECK_DEFAULT=False,
        # a form's token is good while its session is: a page left open is still submittable
        WTF_CSRF_TIME_LIMIT=None,
        # the pages send Referrer-Policy: no-referrer (api/headers.py), so a browser sends no
        # Referer for Flask-WTF's HTTPS check to compare; the session's token is the check
        WTF_CSRF_SSL_STRICT=False,
        SESSION_COOKIE_NAME="labinterp_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=SESSION_HOURS),
    )
    csrf.init_app(app)
    app.jinja_env.filters.update(
        words=display.words,
        num=display.num,
        when=display.when,
        when_short=display.when_short,
        when_date=display.when_date,
        when_time=display.when_time,
        flag_label=display.flag_label,
        flag_arrow=display.flag_arrow,
        interval=display.interval,
        person=display.person,
        critical_limit=display.critical_limit,
    )
    app.jinja_env.globals.update(
        Priority=Priority,
        FindingStatus=FindingStatus,
        ReviewStatus=ReviewStatus,
        Decision=Decision,
        PRIORITY_ICONS=display.PRIORITY_ICONS,
    )


@web.before_request
def _check_csrf() -> None:
    csrf.protect()  # POST, PUT, PATCH, DELETE: 400 (CSRFError) without a valid token


@web.context_processor
def _signed_in() -> dict[str, Any]:
    actor = g.get("actor")
    return {
        "actor": actor,
        "user_email": display.person(actor.name) if actor is not None else None,
    }


def safe_next(target: str | None) -> str | None:
    """A path on this site to return to after sign-in, or None: never another site's URL."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target:
        return None
    return target


def page_error(status: int, title: str, message: str) -> tuple[str, int]:
    return render_template("web/error.html", title=title, message=message, status=status), status


@web.errorhandler(SignInRequired)
def _sign_in_first(exc: SignInRequired) -> Response:
    if exc.ended:
        flash("Your session has ended. Sign in again.", "info")
    back = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("web.sign_in", next=safe_next(back)))  # type: ignore[return-value]


@web.errorhandler(PageForbidden)
def _forbidden(exc: PageForbidden) -> tuple[str, int]:
    return page_error(403, "Not for your role", str(exc))


@web.errorhandler(NotFound)
def _not_found(exc: NotFound) -> tuple[str, int]:
    # another clinic's panel reads exactly like one that does not exist
    return page_error(
        404,
        "Not found",
        "There is no such panel among the clinics you review. Check the link, or go back to "
        "the queue.",
    )


@web.errorhandler(CSRFError)
def _csrf_refused(exc: CSRFError) -> tuple[str, int]:
    return page_error(
        400,
        "The form could not be accepted",
        "The form was out of date or did not come from this site, so nothing was saved. "
        "Go back, reload the page and submit it again.",
    )


@web.errorhandler(Problem)
def _problem(problem: Problem) -> Any:
    body, status = page_error(problem.status, "Please wait", problem.detail)
    return body, status, problem.headers
