"""`labinterp demo`: the sample panels through a running service, shown as a table."""

from __future__ import annotations

import json
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import click

from labinterp.demo import SAMPLE_PANELS
from labinterp.models import PanelStatus


def _call(method: str, url: str, token: str, body: Any = None) -> tuple[int, Any]:
    if not url.lower().startswith(("http://", "https://")):  # no file: or custom schemes
        raise urllib.error.URLError(f"--url must be an http:// or https:// URL, not {url!r}")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - checked above
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - checked above
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        try:
            return exc.code, json.loads(payload)
        except ValueError:
            return exc.code, payload.decode(errors="replace")


def run_demo(
    base_url: str,
    token: str | None,
    timeout: float,
    make_token: Callable[[], str] | None = None,
) -> int:
    """Post the sample panels to ``base_url`` and print a table of what was flagged.

    Without ``token``, ``make_token`` makes one, once the service has answered (so that a
    wrong --url leaves no demo clinic or token behind)."""
    try:
        _call("GET", f"{base_url}/healthz", token or "")
    except (urllib.error.URLError, OSError) as exc:
        click.echo(
            f"error: no labinterp answers at {base_url} ({exc}); start it with "
            "`labinterp serve` or pass --url",
            err=True,
        )
        return 2
    made_here = token is None
    if token is None:
        if make_token is None:
            raise ValueError("run_demo needs a token or make_token")
        token = make_token()
    posted: list[tuple[str, str]] = []
    for panel in SAMPLE_PANELS:
        status, body = _call("POST", f"{base_url}/api/v1/panels", token, panel)
        if status not in (200, 202):
            click.echo(f"error: posting {panel['accession']} answered {status}: {body}", err=True)
            if status == 401 and made_here:
                click.echo(
                    "(the demo token was made in this machine's database, which is not the "
                    f"one the service at {base_url} uses: pass --token, or set DATABASE_URL "
                    "or LABINTERP_INSTANCE as the service has them)",
                    err=True,
                )
            return 1
        posted.append((panel["accession"], body["id"]))
        click.echo(f"posted {panel['accession']} -> {status} ({body['status']})")
    documents = {}
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    for accession, panel_id in posted:
        while True:
            _, body = _call("GET", f"{base_url}/api/v1/panels/{panel_id}", token)
            if body.get("status") != PanelStatus.QUEUED or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        documents[accession] = body
    click.echo(f"interpreted in {time.monotonic() - started:.2f} s\n")
    _print_table(documents)
    missing = [a for a, d in documents.items() if d.get("interpretation") is None]
    if missing:
        click.echo(
            f"\nnot interpreted within {timeout:.0f} s: {', '.join(missing)} "
            "(is a worker running?)",
            err=True,
        )
        return 1
    return 0


def _print_table(documents: dict[str, dict[str, Any]]) -> None:
    header = f"{'accession':<10} {'status':<13} {'priority':<9} findings / red flags"
    click.echo(header)
    click.echo("-" * 100)
    for accession, document in documents.items():
        interpretation = document.get("interpretation")
        if interpretation is None:
            click.echo(
                f"{accession:<10} {document.get('status', '?'):<13} {'-':<9} (not interpreted)"
            )
            continue
        findings = [
            f"{f['code']}"
            + (f" g{f['grade']}" if f.get("grade") else "")
            + (" CRITICAL" if f.get("critical") else "")
            + (" (possibly spurious)" if f.get("possibly_spurious") else "")
            for f in interpretation["findings"]
        ]
        flags = [
            f"red flag: {r['code']}" + (" (urgent)" if r["urgent"] else "")
            for r in interpretation["red_flags"]
        ]
        lines = findings + flags or ["nothing flagged"]
        click.echo(
            f"{accession:<10} {interpretation['status']:<13} "
            f"{interpretation['priority']:<9} {lines[0]}"
        )
        for line in lines[1:]:
            click.echo(f"{'':<34} {line}")
        follow = ", ".join(f["code"] for f in interpretation["follow_up"])
        if follow:
            click.echo(f"{'':<34} next: {follow}")
        for line in textwrap.wrap(interpretation["summary"], 64):
            click.echo(f"{'':<34} {line}")
        click.echo("")
