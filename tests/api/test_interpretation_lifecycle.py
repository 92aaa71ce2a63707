"""What happens to a panel between its 202 and its interpretation: the ruleset that accepted it
judges it, a panel that keeps failing ends `failed` with a reason a clinician can read, and an
operator can queue failed panels again."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from sqlalchemy import update

from labinterp.models import FailureCode, PanelRevision
from labinterp.repositories.interpretations import claim_queued
from labinterp.services.audit import Actor
from labinterp.services.interpretation import interpret_panels
from labinterp.services.sweeper import retry_failed_panels
from tests.api.conftest import auth, sample_panel

PANELS = "/api/v1/panels"
OPERATOR = Actor(name="cli", role="admin")


class Recorder:
    """A dispatcher that records what it was asked to publish (no broker involved)."""

    def __init__(self) -> None:
        self.published: list[uuid.UUID] = []

    def publish_now(self, ids, enqueued_at):  # type: ignore[no-untyped-def]
        self.published += list(ids)
        return []


def _post(client, token, **changes):  # type: ignore[no-untyped-def]
    response = client.post(PANELS, json=sample_panel(**changes), headers=auth(token))
    assert response.status_code == 202, response.get_json()
    return uuid.UUID(response.get_json()["id"])


def _panel(client, token, panel_id):  # type: ignore[no-untyped-def]
    return client.get(f"{PANELS}/{panel_id}", headers=auth(token)).get_json()


def test_a_panel_is_judged_by_the_ruleset_that_accepted_it_though_another_is_active_since(
    client, tokens, runtime, work
):
    """A task that runs late (a backlog, a broker outage) never re-judges a panel under a
    ruleset activated after the 202."""
    early = _post(client, tokens.clinic, accession="UNDER-2026.1")
    activated = client.post("/api/v1/rulesets/2026.2/activate", headers=auth(tokens.admin))
    assert activated.get_json()["active"] == "2026.2"
    late = _post(client, tokens.clinic, accession="UNDER-2026.2")
    work(str(early), str(late))
    assert _panel(client, tokens.clinic, early)["interpretation"]["ruleset"] == "2026.1"
    assert _panel(client, tokens.clinic, late)["interpretation"]["ruleset"] == "2026.2"


def test_a_panel_whose_ruleset_is_not_installed_fails_with_a_readable_reason_then_retries(
    client, tokens, runtime
):
    """The worker that takes the panel lacks its ruleset: `failed`, with a code and a message
    a clinician can read (no exception text); once the ruleset is there, an operator's retry
    interprets it."""
    panel_id = _post(client, tokens.clinic)
    lacking = {k: v for k, v in runtime.rulesets.items() if k != "2026.1"}
    outcome = interpret_panels(runtime.engine, lacking, [panel_id], max_attempts=5)
    assert outcome.failed == [(panel_id, FailureCode.RULESET_UNAVAILABLE)]
    body = _panel(client, tokens.clinic, panel_id)
    assert body["status"] == "failed" and body["interpretation"] is None
    assert body["failure_code"] == "ruleset_unavailable"
    assert "2026.1" in body["failure"] and "retry" in body["failure"]
    assert "Error" not in body["failure"] and "Traceback" not in body["failure"]
    listed = client.get(f"{PANELS}?status=failed", headers=auth(tokens.clinic)).get_json()
    assert [p["id"] for p in listed["items"]] == [str(panel_id)]

    recorder = Recorder()
    with runtime.session_factory() as session:
        retried = retry_failed_panels(
            session,
            recorder,
            OPERATOR,
            dt.datetime.now(dt.UTC),
            code=FailureCode.RULESET_UNAVAILABLE,
        )
    assert retried.panel_ids == recorder.published == [panel_id]
    assert _panel(client, tokens.clinic, panel_id)["status"] == "queued"
    assert interpret_panels(
        runtime.engine, runtime.rulesets, [panel_id], max_attempts=5
    ).interpreted
    body = _panel(client, tokens.clinic, panel_id)
    assert body["status"] == "interpreted" and body["failure"] is None


def test_a_panel_taken_up_too_many_times_without_finishing_fails_instead_of_staying_queued(
    client, tokens, runtime
):
    """Each delivery after the first is counted before any work: a panel whose worker dies
    every time (killed, out of memory) ends `failed` after max_attempts instead of circling
    forever."""
    panel_id = _post(client, tokens.clinic)
    # the first delivery died; so did two redeliveries, each counted before its work
    for expected in (1, 2):
        with runtime.engine.begin() as conn:
            claimed = claim_queued(conn, [panel_id], count=True)
        assert [c.attempts for c in claimed] == [expected]
    outcome = interpret_panels(
        runtime.engine, runtime.rulesets, [panel_id], max_attempts=3, retried=True
    )
    assert outcome.failed == [(panel_id, FailureCode.TOO_MANY_ATTEMPTS)]
    body = _panel(client, tokens.clinic, panel_id)
    assert body["status"] == "failed" and body["failure_code"] == "too_many_attempts"
    assert "taken up 4 times" in body["failure"]


def test_a_redelivered_batch_works_each_panel_alone(client, tokens, runtime):
    """A message delivered again counts an attempt on each panel and interprets them one
    transaction each."""
    ids = [_post(client, tokens.clinic, accession=f"AGAIN-{n}") for n in range(3)]
    outcome = interpret_panels(runtime.engine, runtime.rulesets, ids, max_attempts=5, retried=True)
    assert sorted(outcome.interpreted) == sorted(ids)


def test_a_duplicate_message_for_an_interpreted_panel_does_nothing(client, tokens, runtime, work):
    panel_id = _post(client, tokens.clinic)
    work(str(panel_id))
    again = interpret_panels(runtime.engine, runtime.rulesets, [panel_id], max_attempts=5)
    assert again.skipped == [panel_id] and not again.interpreted
    history = client.get(f"{PANELS}/{panel_id}/interpretations", headers=auth(tokens.clinic))
    assert history.get_json()["total"] == 1


def test_one_bad_panel_does_not_fail_its_batch_mates(client, tokens, runtime):
    """A batch (one message of many panels) with a panel that cannot be interpreted: the
    others are interpreted, that one alone fails."""
    good = [_post(client, tokens.clinic, accession=f"GOOD-{n}") for n in range(3)]
    bad = _post(client, tokens.clinic, accession="BAD")
    with runtime.engine.begin() as conn:  # as if accepted under a ruleset since withdrawn
        conn.execute(
            update(PanelRevision).where(PanelRevision.panel_id == bad).values(ruleset="1999.1")
        )
    outcome = interpret_panels(runtime.engine, runtime.rulesets, [*good, bad], max_attempts=5)
    assert sorted(outcome.interpreted) == sorted(good)
    assert outcome.failed == [(bad, FailureCode.RULESET_UNAVAILABLE)]


def test_a_readable_reason_never_quotes_the_values_of_the_panel(client, tokens, runtime):
    """A ruleset whose acceptance rules changed since the 202 refuses a stored value: the
    reason names the field, never its value or the patient."""
    panel_id = _post(client, tokens.clinic)
    ruleset = runtime.rulesets["2026.1"]
    magnesium = ruleset.analytes["magnesium"]
    narrowed = dataclasses.replace(magnesium, accepted_low=magnesium.accepted_high)
    strict = dataclasses.replace(ruleset, analytes={**ruleset.analytes, "magnesium": narrowed})
    outcome = interpret_panels(runtime.engine, {"2026.1": strict}, [panel_id], max_attempts=5)
    assert outcome.failed == [(panel_id, FailureCode.REJECTED_BY_RULESET)]
    reason = _panel(client, tokens.clinic, panel_id)["failure"]
    assert "results.0" in reason
    assert "1.1" not in reason and "P-0042" not in reason and "0.45" not in reason
