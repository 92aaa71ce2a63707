"""The baseline of the HTTP benchmarks: a bare Flask JSON endpoint at the same path as labinterp's,
served by the same gunicorn settings. It parses the panel and answers 202 with a small JSON
body; no authentication, validation, database or broker."""

from __future__ import annotations

import uuid

from flask import Flask, request

app = Flask("bare")


@app.post("/api/v1/panels")
def panels():  # type: ignore[no-untyped-def]
    panel = request.get_json()
    return {"id": str(uuid.uuid4()), "accession": panel["accession"], "status": "queued"}, 202
