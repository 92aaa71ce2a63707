"""The baseline of bench/ingest_http.py: a bare Flask endpoint that only parses the panel.

Served the way `labinterp serve` serves labinterp (gunicorn, gthread, access log on), at the
same path, so wrk and bench/wrk/post_panels.lua drive both alike:

    cd bench && gunicorn --worker-class gthread --workers 2 --threads 4 bare_app:app
"""

from __future__ import annotations

import json
from decimal import Decimal

from flask import Flask, request

app = Flask("bare")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/api/v1/panels")
def panels() -> tuple[dict[str, str], int]:
    document = json.loads(request.get_data(), parse_float=Decimal)
    return {"accession": document["accession"], "status": "queued"}, 202
