"""A real browser for page tests: Debian's headless Chromium, driven from its command line.

``render(url)`` loads the page, lets its scripts run, and returns the DOM Chromium ended with
and every message the page wrote to the browser console (Content-Security-Policy violations
among them). No browser is downloaded: without /usr/bin/chromium the test is skipped, and
fails under CI=true (.ci/run installs Debian's chromium).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from flask import Flask
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("LABINTERP_TEST_CHROMIUM", "/usr/bin/chromium")
_CONSOLE = re.compile(r":CONSOLE[^\]]*\] (?P<message>.*)$")


@dataclass(frozen=True)
class Rendered:
    dom: str
    console: list[str]  # what the page's scripts and the browser wrote to its console

    @property
    def policy_violations(self) -> list[str]:
        return [line for line in self.console if "Content Security Policy" in line]


def require_chromium() -> str:
    found = shutil.which(CHROMIUM)
    if found is None:
        message = (
            f"no Chromium at {CHROMIUM} (apt-get install chromium, or set LABINTERP_TEST_CHROMIUM)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def render(url: str, budget_ms: int = 15000) -> Rendered:
    """Load ``url`` in headless Chromium, give its scripts ``budget_ms`` of virtual time."""
    chromium = require_chromium()
    with tempfile.TemporaryDirectory(prefix="labinterp-chromium-") as profile:
        done = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--v=0",
                f"--virtual-time-budget={budget_ms}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    console = [m.group("message") for m in map(_CONSOLE.search, done.stderr.splitlines()) if m]
    assert done.returncode == 0 and done.stdout.strip(), done.stderr[-2000:]
    return Rendered(dom=done.stdout, console=console)


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """The app on a real HTTP server on a free loopback port, in a thread; yields its URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
