"""A clinician's day on the review pages, in a real headless Chromium driven by Playwright
(Debian's /usr/bin/chromium through ``executable_path``: no browser is downloaded) against a
real HTTP server: sign in, the queue with the critical panel first, its page with a trend
chart, a review, the panel gone from the queue, sign out.

Each page is photographed at a laptop's and a tablet's size into tests/browser/artifacts/
(git-ignored; CI keeps them as artifacts), and no page may trip its Content-Security-Policy.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from labinterp.app import create_app
from labinterp.demo import SAMPLE_PANELS
from labinterp.services.interpretation import interpret_panels
from tests.e2e.browser import require_chromium, serving
from tests.web.conftest import NORTH_CLINICIAN, PASSWORD, make_runtime, populate

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "browser" / "artifacts"
LAPTOP = {"width": 1366, "height": 768}
TABLET = {"width": 768, "height": 1024}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """The app on a real server, with the demo panels posted by the north clinic and
    interpreted."""
    runtime = make_runtime(tmp_path)
    tokens = populate(runtime)
    app = create_app(runtime=runtime)
    client = app.test_client()
    ids = []
    for body in SAMPLE_PANELS:
        response = client.post(
            "/api/v1/panels", json=body, headers={"Authorization": f"Bearer {tokens['north']}"}
        )
        assert response.status_code == 202, response.get_json()
        ids.append(uuid.UUID(response.get_json()["id"]))
    interpret_panels(runtime.engine, runtime.rulesets, ids, max_attempts=5)
    with serving(app) as url:
        yield url
    runtime.engine.dispose()


def test_a_clinician_signs_in_reviews_the_critical_panel_and_signs_out(site: str) -> None:
    chromium = require_chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    console: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        laptop = browser.new_context(viewport=LAPTOP)
        page = laptop.new_page()
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))

        def shoot(name: str, viewport: str = "laptop", *, on: object = None) -> None:
            target = on or page
            target.screenshot(path=str(ARTIFACTS / f"{name}-{viewport}.png"), full_page=True)  # type: ignore[attr-defined]

        # not signed in: the queue sends the browser to sign in, and back afterwards
        page.goto(f"{site}/review")
        assert "/sign-in?next=/review" in page.url
        shoot("01-sign-in")
        page.fill("#email", NORTH_CLINICIAN)
        page.fill("#password", "not the password")
        page.click("button[type=submit]")
        assert page.locator("#sign-in-error").is_visible()
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/review$"))

        # the queue: the critical panel first, unmistakable
        rows = page.locator("table.queue tbody tr")
        assert rows.count() == 5, page.content()[:2000]
        first = rows.first
        assert "row-critical" in (first.get_attribute("class") or "")
        assert "DEMO-0002" in first.inner_text() and "CRITICAL" in first.inner_text().upper()
        shoot("02-queue")
        tablet = browser.new_context(viewport=TABLET, storage_state=laptop.storage_state())
        tablet_page = tablet.new_page()
        tablet_page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        tablet_page.goto(f"{site}/review")
        shoot("02-queue", "tablet", on=tablet_page)

        # its page: the critical banner, the findings, a trend chart with its points
        first.locator("a.row-link").click()
        page.wait_for_url(re.compile(r"/review/panels/"))
        panel_url = page.url
        assert page.locator(".critical-banner").is_visible()
        assert "6.2 mmol/L" in page.locator(".critical-banner").inner_text()
        chart = page.locator("#trend-potassium-figure svg.trend")
        assert chart.get_attribute("role") == "img"
        assert chart.locator("g.point").count() == 3  # two earlier panels and this one
        assert chart.locator('g.point[data-flag="critical"]').count() == 1
        assert chart.locator("rect.band").count() >= 1
        shoot("03-panel")
        page.locator("#trend-potassium-figure").screenshot(
            path=str(ARTIFACTS / "03-panel-trend-potassium-laptop.png")
        )
        tablet_page.goto(panel_url)
        shoot("03-panel", "tablet", on=tablet_page)

        # a dismissal of a critical value without a note is refused, the note named
        page.check("input[name=decision][value=dismissed]")
        page.click(".review-form button[type=submit]")
        assert page.locator("#note-error").is_visible()
        assert "note" in page.locator("#note-error").inner_text().lower()
        shoot("04-panel-note-required")

        # acknowledged: saved; the next pending panel opens with a word of what was done
        page.check("input[name=decision][value=acknowledged]")
        page.fill("#note", "Called the ward: repeat potassium on a fresh sample ordered.")
        page.click(".review-form button[type=submit]")
        page.wait_for_load_state()
        assert "Reviewed DEMO-0002" in page.locator(".flash-success").inner_text()
        assert page.url != panel_url
        shoot("05-next-panel")

        # the critical panel has left the pending queue
        page.goto(f"{site}/review")
        assert "DEMO-0002" not in page.locator("table.queue").inner_text()
        assert page.locator("table.queue tbody tr").count() == 4
        page.goto(f"{site}/review?status=reviewed")
        assert "DEMO-0002" in page.locator("table.queue").inner_text()
        shoot("06-queue-reviewed")

        # sign out: the pages are closed again
        page.click("text=Sign out")
        page.wait_for_url(re.compile(r"/sign-in"))
        assert "signed out" in page.locator(".flash").inner_text()
        page.goto(f"{site}/review")
        assert "/sign-in" in page.url
        tablet.close()
        browser.close()
    refused = [line for line in console if "Content Security Policy" in line]
    assert refused == [], refused
    # the refused review above answers 422, which the browser reports; nothing else may fail
    errors = [line for line in console if line.startswith("error") and "422" not in line]
    assert errors == [], errors
