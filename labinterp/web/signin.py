"""Signing in and out of the review pages, with an email and a password (services/users.py).

A refused sign-in counts against the address's failed-login limit, as a refused API token
does (api/ratelimit.py): beyond it, the address is answered 429 until the minute is over.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from labinterp.api.auth import current_actor, end_session, page_roles, start_session
from labinterp.api.problems import Problem
from labinterp.api.ratelimit import limiter
from labinterp.api.session import db
from labinterp.services import users as users_service
from labinterp.services.errors import SignInRefused
from labinterp.web.blueprint import safe_next, web

_MAX_PASSWORD = 1024  # argon2 hashes any length; a megabyte of "password" is not one


def _form(email: str = "", error: str | None = None, status: int = 200, **extra: Any) -> Any:
    target = safe_next(request.values.get("next"))
    page = render_template("web/sign_in.html", email=email, error=error, next=target)
    return page, status, extra.get("headers", {})


@web.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Any:
    """GET: the form. POST: sign in and go where the user was going (else the queue)."""
    if request.method != "POST":  # GET, HEAD
        return _form()
    email = request.form.get("email", "").strip()[:254]
    password = request.form.get("password", "")[:_MAX_PASSWORD]
    if not email or not password:
        return _form(email, "Enter your email and your password.", 400)
    address = request.remote_addr or "-"
    try:
        limiter.refuse_if_blocked(address)
        try:
            actor = users_service.sign_in(db(), email, password, address)
        except SignInRefused:
            limiter.failed_login(address)  # 429 instead, beyond the limit
            return _form(
                email, "The email or the password is not right, or the account is disabled.", 200
            )
    except Problem as refused:  # too many failed attempts from this address
        return _form(email, refused.detail, refused.status, headers=refused.headers)
    start_session(actor)
    return redirect(safe_next(request.form.get("next")) or url_for("web.queue"))


@web.post("/sign-out")
@page_roles("clinician", "admin")
def sign_out() -> Any:
    users_service.sign_out(db(), current_actor())
    end_session()
    flash("You are signed out.", "info")
    return redirect(url_for("web.sign_in"))
