"""The clinician's web pages (server-rendered, no JavaScript needed): sign-in, the review
queue, a panel's page with trend charts, and its review form."""

from __future__ import annotations

from flask import Flask

from labinterp.config import Settings
from labinterp.web import pages, signin
from labinterp.web.blueprint import configure_web, web

__all__ = ["install_web", "pages", "signin"]


def install_web(app: Flask, settings: Settings) -> None:
    """Register the pages. Before install_access_control: the gate's table must see them."""
    configure_web(app, settings)
    app.register_blueprint(web)
