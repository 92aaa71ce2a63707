"""What an integrator's review of the API turned up: each test is a request that once
stalled a worker, answered 500, lost or changed data, or told the client something untrue."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from decimal import Decimal
from typing import Any

from labinterp.services.accounts import create_clinic, create_token
from tests.api.conftest import auth, sample_panel

PANELS = "/api/v1/panels"


def post_text(client: Any, token: str, text: str | bytes, **headers: str) -> Any:
    return client.post(
        PANELS,
        data=text,
        headers={**auth(token), **headers},
        content_type=headers.pop("content_type", "application/json"),
    )


def errors_of(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 422, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/problem+json"
    return dict(response.get_json()["errors"])


# --- numbers no laboratory sends: a quick, short 422, never a stall or a 500 ----------------


def test_absurd_magnitudes_are_refused_quickly_with_a_short_message(client, tokens):
    for text in ("1e-999999999", "1e999999999", "1e100000", "9" * 5000):
        raw = json.dumps(sample_panel(accession=f"N-{len(text)}")).replace(
            '"value": 1.1,', f'"value": {text},'
        )
        response = post_text(client, tokens.clinic, raw)
        errors = errors_of(response)
        assert "results.0.value" in errors, errors
        assert len(response.get_data()) < 5000  # the number is not spelled out in full
        assert "set_int_max_str_digits" not in response.get_data(as_text=True)


def test_an_absurd_reference_range_bound_is_refused_with_a_short_message(client, tokens):
    raw = json.dumps(sample_panel()).replace('"low": 200', '"low": 1e999999999')
    response = post_text(client, tokens.clinic, raw)
    assert "results.5.reference_range.low" in errors_of(response)
    assert len(response.get_data()) < 5000


def test_dates_at_the_ends_of_the_calendar_are_422_not_500(client, tokens):
    for moment in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "1850-01-01T00:00Z"):
        response = client.post(
            PANELS, json=sample_panel(collected_at=moment), headers=auth(tokens.clinic)
        )
        assert "collected_at" in errors_of(response)


def test_page_and_revision_numbers_too_large_for_a_database_are_422(client, tokens, posted):
    huge = "99999999999999999999999"
    for url in (f"{PANELS}?page={huge}", f"{PANELS}/{posted['id']}?revision={huge}"):
        response = client.get(url, headers=auth(tokens.clinic))
        assert response.status_code == 422, url


def test_deep_nesting_and_duplicate_keys_are_400_naming_the_problem(client, tokens):
    deep = '{"accession": "D", "x": ' + "[" * 5000 + "]" * 5000 + "}"
    response = post_text(client, tokens.clinic, deep)
    assert response.status_code == 400 and "nested too deeply" in response.get_json()["detail"]
    twice = '{"accession": "A", "accession": "B"}'
    response = post_text(client, tokens.clinic, twice)
    assert (
        response.status_code == 400
        and "'accession' appears twice" in (response.get_json()["detail"])
    )


# --- the body as sent --------------------------------------------------------------------


def test_a_chunked_body_over_the_limit_is_413_not_a_truncated_400(client, tokens):
    body = json.dumps(sample_panel(context={"notes": "x" * (1024 * 1024 + 10)})).encode()
    response = client.post(
        PANELS,
        input_stream=io.BytesIO(body),  # no Content-Length: the size is known only by reading
        headers={**auth(tokens.clinic), "Transfer-Encoding": "chunked"},
        content_type="application/json",
    )
    assert response.status_code == 413, response.get_data(as_text=True)[:300]


def test_a_charset_or_encoding_we_do_not_read_is_415(client, tokens):
    body = json.dumps(sample_panel())
    latin = post_text(client, tokens.clinic, body, content_type="application/json; charset=latin-1")
    assert latin.status_code == 415 and "UTF-8" in latin.get_json()["detail"]
    gzipped = client.post(
        PANELS,
        data=body,
        headers={**auth(tokens.clinic), "Content-Encoding": "gzip"},
        content_type="application/json",
    )
    assert gzipped.status_code == 415
    utf8 = post_text(client, tokens.clinic, body, content_type="application/json; charset=UTF-8")
    assert utf8.status_code == 202


# --- what is stored is what was meant ------------------------------------------------------


def test_a_range_in_another_unit_than_its_value_is_refused_not_relabelled(client, tokens):
    panel = sample_panel()
    panel["results"][0] = {
        "analyte": "magnesium",
        "value": 2.0,
        "unit": "mg/dL",
        "reference_range": {"low": 0.7, "high": 1.0, "unit": "mmol/L"},
    }
    errors = errors_of(client.post(PANELS, json=panel, headers=auth(tokens.clinic)))
    assert "mmol/L" in " ".join(errors["results.0.reference_range.unit"])
    panel["results"][0]["reference_range"] = {"low": 1.7, "high": 2.4, "unit": "MG/DL"}
    assert client.post(PANELS, json=panel, headers=auth(tokens.clinic)).status_code == 202


def test_text_no_database_keeps_and_blank_identifiers_are_refused(client, tokens):
    nul = sample_panel(context={"notes": "before\u0000after"})
    assert "context.notes" in errors_of(client.post(PANELS, json=nul, headers=auth(tokens.clinic)))
    blank = sample_panel(patient={"id": "   ", "sex": "female"})
    assert "patient.id" in errors_of(client.post(PANELS, json=blank, headers=auth(tokens.clinic)))


def test_identifiers_nobody_can_read_back_are_refused_and_unicode_ones_kept(client, tokens):
    """An accession of a zero-width space alone, or one with a line break inside, cannot be
    read back or typed by a person: 422 naming the field. Accents and CJK are fine."""
    for bad in ("\u200b", "\u200b\u2060", "LAB-1\nLAB-2", "LAB\t7"):
        errors = errors_of(
            client.post(PANELS, json=sample_panel(accession=bad), headers=auth(tokens.clinic))
        )
        assert "accession" in errors, bad
    fine = sample_panel(accession="ZNA-Gent-Ü-检验-1", patient={"id": "P-Zoë", "sex": "female"})
    answer = client.post(PANELS, json=fine, headers=auth(tokens.clinic))
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["accession"] == "ZNA-Gent-Ü-检验-1"


def test_only_serum_or_plasma_is_judged(client, tokens):
    blood = sample_panel(specimen={"type": "whole blood", "hemolyzed": False})
    errors = errors_of(client.post(PANELS, json=blood, headers=auth(tokens.clinic)))
    assert "serum" in " ".join(errors["specimen.type"])
    plasma = sample_panel(specimen={"type": "Plasma", "hemolyzed": False})
    assert client.post(PANELS, json=plasma, headers=auth(tokens.clinic)).status_code == 202


def test_a_collection_time_needs_a_time_of_day(client, tokens):
    response = client.post(
        PANELS, json=sample_panel(collected_at="2026-11-20"), headers=auth(tokens.clinic)
    )
    assert "time of day" in " ".join(errors_of(response)["collected_at"])


def test_age_bands_turn_over_on_the_local_date_of_collection(client, tokens, work):
    # 00:30 on the 60th birthday where the sample was taken (+02:00) is the day before in UTC
    panel = sample_panel(
        accession="BIRTHDAY",
        patient={"id": "P-60", "sex": "female", "birth_date": "1965-11-21"},
        collected_at="2025-11-21T00:30:00+02:00",
    )
    panel["results"] = [{"analyte": "calcium", "value": 2.18, "unit": "mmol/L"}]
    response = client.post(PANELS, json=panel, headers=auth(tokens.clinic))
    assert response.status_code == 202
    assert response.get_json()["collected_at"] == "2025-11-20T22:30:00Z"  # the same instant
    work(response.get_json()["id"])
    document = client.get(response.headers["Location"], headers=auth(tokens.clinic)).get_json()
    calcium = document["interpretation"]["results"][0]
    assert calcium["reference_range"]["low"] == Decimal("2.20")  # the ≥ 60 y interval
    assert [f["code"] for f in document["interpretation"]["findings"]] == ["hypocalcemia"]


# --- revisions and retries tell the truth ----------------------------------------------------


def test_a_revision_replaced_before_its_turn_says_superseded(client, tokens, work):
    first = client.post(PANELS, json=sample_panel(), headers=auth(tokens.clinic)).get_json()
    corrected = sample_panel()
    corrected["results"][0]["value"] = 2.0
    url = f"{PANELS}/{first['id']}"
    assert client.post(f"{url}/revisions", json=corrected, headers=auth(tokens.clinic)).status_code
    work(first["id"])  # the worker takes the panel as it now is: revision 2
    old = client.get(f"{url}?revision=1", headers=auth(tokens.clinic)).get_json()
    assert old["status"] == "superseded" and old["interpretation"] is None
    current = client.get(url, headers=auth(tokens.clinic)).get_json()
    assert current["status"] == "interpreted" and current["interpretation"]["revision"] == 2


def test_posting_an_earlier_revisions_content_again_is_a_conflict(client, tokens):
    a = sample_panel()
    first = client.post(PANELS, json=a, headers=auth(tokens.clinic)).get_json()
    b = sample_panel()
    b["results"][0]["value"] = 2.0
    client.post(f"{PANELS}/{first['id']}/revisions", json=b, headers=auth(tokens.clinic))
    # the panel now holds b: a 200 for a would claim values it no longer holds
    assert client.post(PANELS, json=a, headers=auth(tokens.clinic)).status_code == 409
    assert client.post(PANELS, json=b, headers=auth(tokens.clinic)).status_code == 200


def test_reordered_results_and_an_empty_context_are_the_same_content(client, tokens):
    a = sample_panel(context={})
    assert client.post(PANELS, json=a, headers=auth(tokens.clinic)).status_code == 202
    again = sample_panel(context=None)
    again["results"] = list(reversed(again["results"]))
    assert client.post(PANELS, json=again, headers=auth(tokens.clinic)).status_code == 200


# --- lists and trends ------------------------------------------------------------------------


def test_a_date_alone_as_collected_to_includes_that_day(client, tokens):
    client.post(
        PANELS,
        json=sample_panel(accession="DAY", collected_at="2026-11-20T23:59:00Z"),
        headers=auth(tokens.clinic),
    )
    listing = client.get(f"{PANELS}?collected_to=2026-11-20", headers=auth(tokens.clinic))
    assert [p["accession"] for p in listing.get_json()["items"]] == ["DAY"]
    before = client.get(f"{PANELS}?collected_to=2026-11-19", headers=auth(tokens.clinic))
    assert before.get_json()["total"] == 0


def test_flags_filter_by_any_of_several_and_refuse_unknown_codes(client, tokens, work):
    normal = sample_panel(accession="NORMAL")
    normal["results"] = [{"analyte": "potassium", "value": 4.2, "unit": "mmol/L"}]
    normal["context"] = None
    high = sample_panel(accession="HIGH")
    high["results"] = [{"analyte": "potassium", "value": 5.8, "unit": "mmol/L"}]
    high["context"] = None
    low = sample_panel(accession="LOW")
    ids = [
        client.post(PANELS, json=p, headers=auth(tokens.clinic)).get_json()["id"]
        for p in (normal, high, low)
    ]
    work(*ids)
    both = client.get(
        f"{PANELS}?flag=hyperkalemia&flag=HYPOMAGNESEMIA", headers=auth(tokens.clinic)
    ).get_json()
    assert sorted(p["accession"] for p in both["items"]) == ["HIGH", "LOW"]
    assert client.get(f"{PANELS}?flag=h", headers=auth(tokens.clinic)).get_json()["total"] == 1
    unknown = client.get(f"{PANELS}?flag=banana", headers=auth(tokens.clinic))
    assert "flag" in errors_of(unknown)


def test_a_trend_never_mixes_two_clinics_patients_who_share_an_id(client, tokens, runtime, work):
    with runtime.session_factory() as session:
        create_clinic(session, "east")
        east = create_token(session, "clinic", ["east"]).token
    ids = [
        client.post(PANELS, json=sample_panel(), headers=auth(token)).get_json()["id"]
        for token in (tokens.clinic, east)
    ]
    work(*ids)
    url = "/api/v1/patients/P-0042/trend?analyte=magnesium"
    mixed = client.get(url, headers=auth(tokens.admin))
    assert "east" in " ".join(errors_of(mixed)["clinic"])
    one = client.get(f"{url}&clinic=east", headers=auth(tokens.admin)).get_json()
    assert one["total"] == 1 and one["items"][0]["clinic"] == "east"
    assert client.get(url, headers=auth(east)).get_json()["total"] == 1


def test_a_patient_id_with_a_slash_has_a_trend(client, tokens, work):
    panel = sample_panel(accession="SLASH", patient={"id": "A/B", "sex": "male"})
    panel_id = client.post(PANELS, json=panel, headers=auth(tokens.clinic)).get_json()["id"]
    work(panel_id)
    trend = client.get(
        "/api/v1/patients/A%2FB/trend?analyte=magnesium", headers=auth(tokens.clinic)
    )
    assert trend.status_code == 200 and trend.get_json()["total"] == 1


def test_canonical_values_keep_their_reporting_precision(client, tokens):
    panel = sample_panel(accession="PRECISION")
    panel["results"] = [{"analyte": "magnesium", "value": 1.7, "unit": "mg/dL"}]
    response = client.post(PANELS, json=panel, headers=auth(tokens.clinic))
    assert b'"value":0.70,"unit":"mmol/L"' in response.get_data()  # 0.69938 at 2 decimals
    again = client.get(response.headers["Location"], headers=auth(tokens.clinic))
    assert b'"value":0.70,"unit":"mmol/L"' in again.get_data()


def test_the_docs_answer_with_or_without_a_trailing_slash(client):
    assert client.get("/docs").status_code == 200
    assert client.get("/docs/", follow_redirects=True).status_code == 200


def test_interpreting_a_revision_that_is_no_longer_current_leaves_the_panel_queued(
    client, tokens, runtime
):
    # a worker that read the panel before a correction committed stores its judgement after:
    # the panel must not read `interpreted` beside the old revision's findings
    from labinterp.repositories.interpretations import claim_queued, current_revisions
    from labinterp.services.interpretation import _judge_and_store, interpret_panels

    first = client.post(PANELS, json=sample_panel(), headers=auth(tokens.clinic)).get_json()
    panel_id = uuid.UUID(first["id"])
    with runtime.engine.begin() as conn:  # the worker takes the panel and reads revision 1
        claims = claim_queued(conn, [panel_id], count=False)
        read = current_revisions(conn, [panel_id])
    assert [r.revision for r in read] == [1]
    corrected = sample_panel()
    corrected["results"][1] = {"loinc": "2823-3", "value": 6.8, "unit": "mmol/L"}
    url = f"{PANELS}/{first['id']}"
    client.post(f"{url}/revisions", json=corrected, headers=auth(tokens.clinic))
    with runtime.engine.begin() as conn:  # ... and stores its judgement of revision 1 after
        late = _judge_and_store(
            conn, runtime.rulesets, claims, read, lambda: dt.datetime.now(dt.UTC)
        )
    assert late.interpreted == [panel_id]
    panel = client.get(url, headers=auth(tokens.clinic)).get_json()
    assert panel["status"] == "queued" and panel["interpretation"] is None
    queued = client.get(f"{PANELS}?status=queued", headers=auth(tokens.clinic)).get_json()
    assert first["id"] in [p["id"] for p in queued["items"]]  # its own message, or the sweeper

    interpret_panels(runtime.engine, runtime.rulesets, [panel_id], max_attempts=5)
    panel = client.get(url, headers=auth(tokens.clinic)).get_json()
    assert panel["status"] == "interpreted" and panel["interpretation"]["revision"] == 2
    assert "hyperkalemia" in [f["code"] for f in panel["interpretation"]["findings"]]
