"""Security headers on every response, errors included.

* ``Cache-Control: no-store`` on everything but the static files: any answer of the API may
  carry patient data, and no browser, proxy or shared cache may keep it.
* ``Content-Security-Policy``: for JSON, nothing may load or frame it; for pages (/docs),
  scripts, styles and images from this server only, no inline script, no plugin, no framing.
* ``X-Content-Type-Options``, ``X-Frame-Options`` and ``Referrer-Policy``: a browser neither
  guesses content types, nor frames the pages, nor sends our URLs (patient ids in paths) on.
"""

from __future__ import annotations

from flask import Flask, Response, request

DATA_POLICY = "default-src 'none'; frame-ancestors 'none'"
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# endpoints that serve the same public files to everyone: browsers may keep those
CACHEABLE_ENDPOINTS = frozenset({"static", "swagger_assets"})


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Content-Security-Policy"] = (
        PAGE_POLICY if response.mimetype == "text/html" else DATA_POLICY
    )
    if request.endpoint not in CACHEABLE_ENDPOINTS or response.status_code >= 400:
        headers["Cache-Control"] = "no-store"
    return response


def install_security_headers(app: Flask) -> None:
    app.after_request(add_security_headers)
