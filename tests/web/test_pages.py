"""What the queue and a panel's page show, what they record in the audit trail, and the
headers and cookie they are served with."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import select

from labinterp.app import create_app
from labinterp.config import load_settings
from labinterp.models import Alert, AuditEvent, Panel
from tests.web.conftest import (
    CRITICAL_K,
    NORMAL_K,
    NORTH_CLINICIAN,
    ROUTINE_D,
    UNJUDGED_PHOSPHATE,
    URGENT_K,
    World,
    events,
    make_runtime,
    populate,
    sign_in,
)


def _rows(page: str) -> list[str]:
    return re.findall(r'<tr class="queue-row ([^"]+)">(.*?)</tr>', page, flags=re.S)  # type: ignore[return-value]


def test_the_queue_lists_critical_first_and_marks_critical_rows_beyond_colour(
    world: World, clinician: FlaskClient
) -> None:
    world.post("ROUTINE-1", ROUTINE_D, collected_at="2026-10-01T08:00:00Z")
    world.post("URGENT-1", URGENT_K, collected_at="2026-10-02T08:00:00Z")
    world.post("CRIT-1", CRITICAL_K, collected_at="2026-10-03T08:00:00Z")
    world.post("NORMAL-1", NORMAL_K)
    page = clinician.get("/review").get_data(as_text=True)
    rows = _rows(page)
    assert [re.search(r">([A-Z]+-1)</a>", row).group(1) for _, row in rows] == [  # type: ignore[union-attr]
        "CRIT-1",
        "URGENT-1",
        "ROUTINE-1",
    ]
    css_class, critical = rows[0]
    assert css_class == "row-critical"
    # an icon and a word, not only a colour; the patient, the finding, the collection time
    assert 'badge-critical"><span class="badge-icon" aria-hidden="true">◆</span>Critical' in (
        critical
    )
    assert "P-CRIT-1" in critical and "hyperkalemia" in critical and "3 Oct 2026" in critical
    assert "NORMAL-1" not in page
    # the filter links count the whole queue
    assert re.search(r"Pending <span class=\"chip-count\">3</span>", page)
    assert re.search(r"Critical <span class=\"chip-count\" title=\"pending\">1</span>", page)


def test_the_filters_narrow_the_queue_by_priority_and_status(
    world: World, clinician: FlaskClient
) -> None:
    world.post("URGENT-1", URGENT_K)
    world.post("CRIT-1", CRITICAL_K)
    page = clinician.get("/review?priority=urgent").get_data(as_text=True)
    assert "URGENT-1" in page and "CRIT-1" not in page
    reviewed = clinician.get("/review?status=reviewed").get_data(as_text=True)
    assert "URGENT-1" not in reviewed and "No panels match these filters" in reviewed
    # nonsense in the query is the default, not an error
    assert clinician.get("/review?status=nope&priority=x&page=-3").status_code == 200


def test_the_queue_pages_through_many_panels(world: World, clinician: FlaskClient) -> None:
    for n in range(27):
        world.post(f"D-{n:02d}", ROUTINE_D, collected_at=f"2026-10-01T08:{n:02d}:00Z")
    first = clinician.get("/review").get_data(as_text=True)
    second = clinician.get("/review?page=2").get_data(as_text=True)
    assert len(_rows(first)) == 25 and len(_rows(second)) == 2
    assert "Page 1 of 2" in first and 'rel="next" href="/review?status=pending&amp;page=2"' in first
    assert "D-26" in second and "D-26" not in first


def test_an_empty_queue_says_that_normal_panels_never_appear(
    world: World, clinician: FlaskClient
) -> None:
    world.post("NORMAL-1", NORMAL_K)
    page = clinician.get("/review").get_data(as_text=True)
    assert "Nothing is waiting for your review" in page
    assert "Normal panels never appear in it" in page


def test_a_critical_panel_whose_alert_was_not_delivered_says_so_in_the_queue(
    world: World, clinician: FlaskClient
) -> None:
    panel_id = uuid.UUID(world.post("CRIT-1", CRITICAL_K))
    with world.runtime.session_factory() as session:
        panel = session.get(Panel, panel_id)
        assert panel is not None and panel.interpretation_id is not None
        now = dt.datetime.now(dt.UTC)
        session.add(
            Alert(
                interpretation_id=panel.interpretation_id,
                panel_id=panel.id,
                clinic_id=panel.clinic_id,
                status="gave_up",
                attempts=7,
                give_up_at=now,
                last_error="HTTP 503",
            )
        )
        session.commit()
    page = clinician.get("/review").get_data(as_text=True)
    assert "Alert not delivered" in page


def test_the_panel_page_puts_the_critical_value_and_its_limit_first(
    world: World, clinician: FlaskClient
) -> None:
    panel_id = world.post("CRIT-1", CRITICAL_K)
    page = clinician.get(f"/review/panels/{panel_id}").get_data(as_text=True)
    banner = page.index('class="critical-banner"')
    assert banner < page.index('id="summary-title"') < page.index('id="results-title"')
    assert "Potassium 6.8 mmol/L" in page[banner:]
    assert "critical limit <strong>&gt; 6.2 mmol/L (Kost 1990)</strong>" in page
    assert "Critically high" in page and ">HH<" in page and "Grade 3" in page
    # printed, the page names the patient and the accession
    assert 'Patient <span class="ident">P-CRIT-1</span>' in page
    assert 'Accession <span class="ident">CRIT-1</span>' in page


def test_a_result_without_an_interval_reads_no_interval_not_judged_never_normal(
    world: World, clinician: FlaskClient
) -> None:
    panel_id = world.post("IND-1", UNJUDGED_PHOSPHATE, sex="unknown", age=10)
    page = clinician.get(f"/review/panels/{panel_id}").get_data(as_text=True)
    row = page[page.index("Phosphate") :]
    row = row[: row.index("</tbody>")]
    assert "No interval, not judged" in row and "Normal" not in row


def test_the_clinics_notes_are_shown_verbatim_and_escaped(
    world: World, clinician: FlaskClient
) -> None:
    notes = 'twitching in the "left" eyelid\n<script>alert(1)</script> & worse at night'
    panel_id = world.post(
        "CTX-1",
        ROUTINE_D,
        context={
            "twitching": {"sites": ["left eyelid"], "duration_days": 5, "frequency": "daily"},
            "factors": ["caffeine"],
            "notes": notes,
        },
    )
    page = clinician.get(f"/review/panels/{panel_id}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert (
        "twitching in the &#34;left&#34; eyelid\n&lt;script&gt;alert(1)&lt;/script&gt; "
        "&amp; worse at night" in page
    )
    assert "left eyelid · for 5 days · daily" in page


def test_the_panel_page_draws_a_trend_per_analyte_with_the_patients_earlier_panels(
    world: World, clinician: FlaskClient
) -> None:
    earlier = world.post("K-0", NORMAL_K, patient="P-7", collected_at="2026-09-01T08:00:00Z")
    panel_id = world.post("K-1", CRITICAL_K, patient="P-7")
    page = clinician.get(f"/review/panels/{panel_id}").get_data(as_text=True)
    svg = page[page.index('<svg class="trend"') : page.index("</svg>")]
    assert 'role="img"' in svg and "<title" in svg and "<desc" in svg
    assert svg.count('<g class="point"') == 2
    assert 'data-flag="critical" data-current="true"' in svg
    assert "2 potassium results from 1 Sep 2026 to 1 Nov 2026, rising from 4.2 to 6.8" in svg
    # the same data as a table, the earlier result linked to its panel
    assert f'href="/review/panels/{earlier}"' in page


def test_one_page_read_is_one_audit_event_naming_every_panel_it_shows(
    world: World, clinician: FlaskClient
) -> None:
    earlier = world.post("K-0", NORMAL_K, patient="P-7", collected_at="2026-09-01T08:00:00Z")
    panel_id = world.post("K-1", CRITICAL_K, patient="P-7")
    clinician.get(f"/review/panels/{panel_id}")
    [event] = events(world, "panel.read")
    assert str(event.panel_id) == panel_id
    assert event.actor == f"user:{NORTH_CLINICIAN}"
    assert event.detail["panel_ids"] == sorted([earlier, panel_id])
    assert event.detail["via"] == "review page"
    with world.runtime.session_factory() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.actor == f"user:{NORTH_CLINICIAN}")
        ).all()
    assert sorted(actions) == ["panel.read", "user.sign_in"]


def test_the_queue_read_is_audited_with_the_panels_it_lists(
    world: World, clinician: FlaskClient
) -> None:
    panel_id = world.post("CRIT-1", CRITICAL_K)
    clinician.get("/review")
    [event] = events(world, "review_queue.read")
    assert event.detail["panel_ids"] == [panel_id]


def test_pages_are_served_under_the_strict_policy_and_never_cached(
    world: World, clinician: FlaskClient
) -> None:
    panel_id = world.post("CRIT-1", CRITICAL_K)
    for path in ("/sign-in", "/review", f"/review/panels/{panel_id}"):
        response = clinician.get(path)
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert response.headers["Cache-Control"] == "no-store"
        page = response.get_data(as_text=True)
        assert "<script" not in page and "style=" not in page


def test_the_session_cookie_is_httponly_samesite_lax_and_not_secure_on_the_embedded_default(
    client: FlaskClient,
) -> None:
    response = sign_in(client, NORTH_CLINICIAN)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("labinterp_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain HTTP on a laptop (SQLite, the embedded default)


def test_the_session_cookie_is_secure_when_asked_and_by_default_off_the_embedded_default(
    tmp_path: Path,
) -> None:
    runtime = make_runtime(tmp_path, LABINTERP_SECURE_COOKIES="1")
    populate(runtime)
    client = create_app(runtime=runtime).test_client()
    cookie = sign_in(client, NORTH_CLINICIAN).headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    runtime.engine.dispose()
    postgres = load_settings({"DATABASE_URL": "postgresql://db/labinterp"})
    assert postgres.secure_cookies is True
    assert load_settings({}).secure_cookies is False
    plain = load_settings({"DATABASE_URL": "postgresql://db/x", "LABINTERP_SECURE_COOKIES": "off"})
    assert plain.secure_cookies is False
