"""Critical-value alerts against a real local webhook, on SQLite and PostgreSQL: one signed
POST per critical interpretation, retried with growing waits until a 2xx or the give-up time,
every try recorded, never sent twice."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete, func, select, update

from labinterp.broker import ALERT_QUEUE
from labinterp.models import Alert, AlertAttempt, AlertStatus, AuditEvent, ClinicWebhook, Panel
from labinterp.repositories.alerts import create_alerts
from labinterp.runtime import Runtime
from labinterp.services.accounts import CLI
from labinterp.services.alerts import (
    Delivery,
    DeliveryOutcome,
    RetryPolicy,
    deliver_alert,
    sweep_lost_alerts,
)
from labinterp.services.interpretation import interpret_panels
from labinterp.services.webhooks import set_webhook
from labinterp.webhook_client import WebhookClient
from tests.api.conftest import auth, clinic_app, sample_panel
from tests.integration.services import fresh_postgres_database
from tests.integration.webhook_receiver import webhook_receiver
from tests.integration.worker_process import REPO

SECRET = "whsec-test-0123456789abcdef"
PUBLIC_URL = "https://labinterp.example.org"
RETRY = RetryPolicy(base_seconds=30, cap_seconds=3600)


@dataclass
class Stack:
    runtime: Runtime
    client: FlaskClient
    token: str

    def count(self, model: Any, *where: Any) -> int:
        with self.runtime.session_factory() as session:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    def alert(self, alert_id: uuid.UUID) -> Alert:
        with self.runtime.session_factory() as session:
            alert = session.get(Alert, alert_id)
            assert alert is not None
            session.expunge(alert)
            return alert

    def attempts(self, alert_id: uuid.UUID) -> list[AlertAttempt]:
        with self.runtime.session_factory() as session:
            rows = session.scalars(
                select(AlertAttempt)
                .where(AlertAttempt.alert_id == alert_id)
                .order_by(AlertAttempt.id)
            ).all()
            session.expunge_all()
            return list(rows)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    env = {"LABINTERP_INSTANCE": str(tmp_path / "instance"), "LABINTERP_RATE_LIMIT": "0"}
    if request.param == "sqlite":
        runtime, client, token = clinic_app(env)
        yield Stack(runtime, client, token)
        runtime.engine.dispose()
        return
    with fresh_postgres_database() as database_url:
        runtime, client, token = clinic_app({**env, "DATABASE_URL": database_url})
        yield Stack(runtime, client, token)
        runtime.engine.dispose()


def register(stack: Stack, url: str, clinic: str = "c") -> None:
    with stack.runtime.session_factory() as session:
        set_webhook(session, clinic, url, SECRET, actor=CLI)


def critical_panel(accession: str = "CRIT-1") -> dict[str, Any]:
    """Potassium 2.4 mmol/L: below the critical limit 2.8 (Kost 1990), a critical value."""
    body = sample_panel(accession=accession)
    body["results"][1] = {"loinc": "2823-3", "value": 2.4, "unit": "mmol/L"}
    return body


def post_and_interpret(
    stack: Stack, body: dict[str, Any], give_up: dt.timedelta = dt.timedelta(days=1)
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """Post the panel and run the worker's unit of work on it: (panel id, alerts made)."""
    response = stack.client.post("/api/v1/panels", json=body, headers=auth(stack.token))
    assert response.status_code == 202, response.get_json()
    panel_id = uuid.UUID(response.get_json()["id"])
    outcome = interpret_panels(
        stack.runtime.engine,
        stack.runtime.rulesets,
        [panel_id],
        max_attempts=5,
        alert_give_up=give_up,
    )
    assert outcome.interpreted == [panel_id]
    return panel_id, outcome.alerts


def deliver(
    stack: Stack, alert_id: uuid.UUID, at: dt.datetime, client: WebhookClient | None = None
) -> Delivery:
    return deliver_alert(
        stack.runtime.engine,
        alert_id,
        client=client or WebhookClient(timeout=5),
        retry=RETRY,
        public_url=PUBLIC_URL,
        clock=lambda: at,
    )


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_a_critical_interpretation_posts_one_alert_signed_over_timestamp_and_body(stack):
    with webhook_receiver([200]) as receiver:
        register(stack, receiver.url)
        panel_id, [alert_id] = post_and_interpret(stack, critical_panel())
        sent_at = now()
        assert deliver(stack, alert_id, sent_at).outcome is DeliveryOutcome.DELIVERED

        [request] = receiver.requests
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["X-Labinterp-Alert-Id"] == str(alert_id)
        # the receiver's check: HMAC-SHA256 under the secret over "<t>.<body>"
        fields = dict(
            part.split("=", 1) for part in request.headers["X-Labinterp-Signature"].split(",")
        )
        assert set(fields) == {"t", "v1"}
        assert int(fields["t"]) == int(sent_at.timestamp())
        signed = fields["t"].encode() + b"." + request.body
        expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(fields["v1"], expected)
        wrong = hmac.new(b"another secret", signed, hashlib.sha256).hexdigest()
        assert fields["v1"] != wrong

        alert = json.loads(request.body)
        assert alert["id"] == str(alert_id) and alert["type"] == "critical_value"
        assert alert["panel_id"] == str(panel_id)
        assert alert["accession"] == "CRIT-1"
        assert alert["patient_id"] == "P-0042"
        assert alert["clinic"] == "c" and alert["priority"] == "critical"
        assert alert["finding_codes"][0] == "hypokalemia"
        assert "hypomagnesemia" in alert["finding_codes"]
        assert alert["critical_finding_codes"] == ["hypokalemia"]
        assert alert["link"] == f"{PUBLIC_URL}/review/panels/{panel_id}"
        assert request.body == json.dumps(alert, separators=(",", ":")).encode()  # compact

        stored = stack.alert(alert_id)
        assert stored.status == AlertStatus.DELIVERED and stored.attempts == 1
        assert stored.delivered_at is not None and stored.last_error is None
        [attempt] = stack.attempts(alert_id)
        assert attempt.status_code == 200 and attempt.error is None
        assert attempt.url == receiver.url

        # the same message delivered again (a redelivered task): nothing is sent
        later = sent_at + dt.timedelta(hours=1)
        assert deliver(stack, alert_id, later).outcome is DeliveryOutcome.NOT_DUE
        assert receiver.count() == 1


def test_a_webhook_answering_500_twice_then_200_is_tried_three_times_with_growing_waits(stack):
    with webhook_receiver([500, 500, 200]) as receiver:
        register(stack, receiver.url)
        _, [alert_id] = post_and_interpret(stack, critical_panel())
        first_try = now()
        first = deliver(stack, alert_id, first_try)
        assert first.outcome is DeliveryOutcome.RETRYING and first.retry_at is not None
        # before its time, a message (a duplicate, or the sweep's) sends nothing
        early = deliver(stack, alert_id, first_try + dt.timedelta(seconds=5))
        assert early.outcome is DeliveryOutcome.NOT_DUE and receiver.count() == 1
        assert stack.alert(alert_id).last_error == "HTTP 500"

        second = deliver(stack, alert_id, first.retry_at)
        assert second.outcome is DeliveryOutcome.RETRYING and second.retry_at is not None
        third = deliver(stack, alert_id, second.retry_at)
        assert third.outcome is DeliveryOutcome.DELIVERED

        wait_one = (first.retry_at - first_try).total_seconds()
        wait_two = (second.retry_at - first.retry_at).total_seconds()
        assert 30 * 0.75 <= wait_one <= 30 * 1.25  # the base, varied by at most a quarter
        assert 60 * 0.75 <= wait_two <= 60 * 1.25  # doubled
        assert wait_two > wait_one
        assert receiver.count() == 3
        attempts = stack.attempts(alert_id)
        assert [a.status_code for a in attempts] == [500, 500, 200]
        assert [a.at for a in attempts] == [first_try, first.retry_at, second.retry_at]
        alert = stack.alert(alert_id)
        assert alert.status == AlertStatus.DELIVERED and alert.attempts == 3
        assert alert.last_error is None


def test_one_alert_delivered_by_two_deliveries_at_once_is_posted_once(stack):
    """Two workers holding a message each for the same alert (a duplicate, a redelivery):
    the webhook answers slowly, so the two overlap; exactly one POST is made."""
    with webhook_receiver([200], delay=0.5) as receiver:
        register(stack, receiver.url)
        _, [alert_id] = post_and_interpret(stack, critical_panel())
        at = now()
        outcomes: list[Delivery] = []
        barrier = threading.Barrier(2)

        def one_delivery() -> None:
            barrier.wait()
            outcomes.append(deliver(stack, alert_id, at))

        threads = [threading.Thread(target=one_delivery) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(o.outcome for o in outcomes) == [
            DeliveryOutcome.DELIVERED,
            DeliveryOutcome.NOT_DUE,
        ]
        assert deliver(stack, alert_id, at + dt.timedelta(hours=2)).outcome is (
            DeliveryOutcome.NOT_DUE
        )
        assert receiver.count() == 1
        assert len(stack.attempts(alert_id)) == 1


def test_interpreting_the_same_revision_again_makes_no_second_alert(stack):
    with webhook_receiver([200]) as receiver:
        register(stack, receiver.url)
        panel_id, [alert_id] = post_and_interpret(stack, critical_panel())
        engine, rulesets = stack.runtime.engine, stack.runtime.rulesets
        # a duplicate message: the panel is interpreted already
        again = interpret_panels(engine, rulesets, [panel_id], max_attempts=5)
        assert again.skipped == [panel_id] and again.alerts == []
        # a message redelivered after its panel was put back in the queue: the revision is
        # interpreted under its ruleset already, and nothing new is stored
        with engine.begin() as conn:
            conn.execute(update(Panel).where(Panel.id == panel_id).values(status="queued"))
        again = interpret_panels(engine, rulesets, [panel_id], max_attempts=5, retried=True)
        assert again.already_done == [panel_id] and again.alerts == []
        # and the table itself never holds two for one interpretation
        interpretation_id = stack.alert(alert_id).interpretation_id
        with engine.begin() as conn:
            made = create_alerts(conn, [(interpretation_id, panel_id)], now(), now())
        assert made == []
        assert stack.count(Alert) == 1
        assert receiver.count() == 0  # making alerts sends nothing: the task does


def test_an_alert_never_answered_2xx_is_tried_until_its_give_up_time_then_given_up(stack):
    give_up = dt.timedelta(minutes=10)
    with webhook_receiver([503]) as receiver:
        register(stack, receiver.url)
        _, [alert_id] = post_and_interpret(stack, critical_panel(), give_up=give_up)
        give_up_at = stack.alert(alert_id).give_up_at
        at = stack.alert(alert_id).created_at
        tries = 0
        while True:
            delivery = deliver(stack, alert_id, at)
            tries += 1
            assert tries < 20
            if delivery.outcome is not DeliveryOutcome.RETRYING:
                break
            assert delivery.retry_at is not None and delivery.retry_at < give_up_at
            at = delivery.retry_at
        assert delivery.outcome is DeliveryOutcome.GAVE_UP
        # 30, 60, 120, 240 s (each ±25 %): four or five tries fit in ten minutes
        assert tries in (4, 5)
        attempts = stack.attempts(alert_id)
        assert len(attempts) == tries == receiver.count()
        assert all(a.status_code == 503 and a.at < give_up_at for a in attempts)
        alert = stack.alert(alert_id)
        assert alert.status == AlertStatus.GAVE_UP and alert.attempts == tries
        assert alert.last_error == "HTTP 503"
        assert deliver(stack, alert_id, give_up_at).outcome is DeliveryOutcome.NOT_DUE
        assert receiver.count() == tries


def test_an_alert_first_tried_after_its_give_up_time_is_given_up_unsent(stack):
    with webhook_receiver([200]) as receiver:
        register(stack, receiver.url)
        _, [alert_id] = post_and_interpret(stack, critical_panel())
        too_late = stack.alert(alert_id).give_up_at + dt.timedelta(seconds=1)
        assert deliver(stack, alert_id, too_late).outcome is DeliveryOutcome.GAVE_UP
        assert receiver.count() == 0 and stack.attempts(alert_id) == []
        alert = stack.alert(alert_id)
        assert alert.status == AlertStatus.GAVE_UP and alert.attempts == 0


def test_an_unreachable_webhook_is_recorded_in_a_few_words(stack):
    with webhook_receiver([200]) as receiver:
        closed = receiver.url
    register(stack, closed)  # the receiver is gone: nothing listens on its port
    _, [alert_id] = post_and_interpret(stack, critical_panel())
    assert deliver(stack, alert_id, now()).outcome is DeliveryOutcome.RETRYING
    [attempt] = stack.attempts(alert_id)
    assert attempt.status_code is None and attempt.error == "connection refused"
    assert stack.alert(alert_id).last_error == "connection refused"


def test_a_webhook_that_hangs_is_given_up_on_after_the_timeout(stack):
    with webhook_receiver([200], hold=True) as receiver:
        register(stack, receiver.url)
        _, [alert_id] = post_and_interpret(stack, critical_panel())
        delivery = deliver(stack, alert_id, now(), client=WebhookClient(timeout=0.5))
        assert delivery.outcome is DeliveryOutcome.RETRYING
        [attempt] = stack.attempts(alert_id)
        assert attempt.error == "timed out" and attempt.status_code is None
        assert attempt.duration_ms < 5000


def test_no_alert_without_a_webhook_nor_for_an_interpretation_that_is_not_critical(stack):
    _, made = post_and_interpret(stack, critical_panel("NO-HOOK"))
    assert made == [] and stack.count(Alert) == 0
    with webhook_receiver([200]) as receiver:
        register(stack, receiver.url)
        panel_id, made = post_and_interpret(stack, sample_panel(accession="URGENT"))
        panel = stack.client.get(f"/api/v1/panels/{panel_id}", headers=auth(stack.token))
        assert panel.get_json()["interpretation"]["priority"] == "urgent"
        assert made == [] and stack.count(Alert) == 0


def test_a_webhook_removed_before_its_alert_was_sent_gives_the_alert_up_unsent(stack):
    with webhook_receiver([200]) as receiver:
        register(stack, receiver.url)
        _, [alert_id] = post_and_interpret(stack, critical_panel())
        with stack.runtime.session_factory() as session:
            session.execute(delete(ClinicWebhook))
            session.commit()
        assert deliver(stack, alert_id, now()).outcome is DeliveryOutcome.GAVE_UP
        assert receiver.count() == 0
        assert stack.alert(alert_id).last_error == "the clinic's webhook was removed"


def test_setting_a_webhook_is_audited_without_its_secret(stack):
    register(stack, "https://clinic.example.org/hooks/labinterp?token=abc")
    with stack.runtime.session_factory() as session:
        [event] = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "webhook.set")
        ).all()
    assert event.detail == {"origin": "https://clinic.example.org", "secret_changed": True}
    assert SECRET not in json.dumps(event.detail) and "token=abc" not in json.dumps(event.detail)


def test_the_sweep_publishes_again_an_alert_whose_message_was_lost(tmp_path):
    """On the embedded broker: an alert whose message never came (the publish failed, the
    broker lost it) is published again once it is overdue by the sweep interval, once."""
    runtime, client, token = clinic_app(
        {"LABINTERP_INSTANCE": str(tmp_path / "instance"), "LABINTERP_RATE_LIMIT": "0"}
    )
    stack = Stack(runtime, client, token)
    register(stack, "http://127.0.0.1:9/unused")
    _, [alert_id] = post_and_interpret(stack, critical_panel())
    queue = Path(runtime.settings.broker_transport_options["data_folder_in"])

    def published() -> int:
        return len(list(queue.glob(f"*.{ALERT_QUEUE}.msg")))

    made = stack.alert(alert_id).created_at
    engine, dispatcher = runtime.engine, runtime.dispatcher
    assert sweep_lost_alerts(engine, dispatcher, 60, made + dt.timedelta(seconds=30)) == []
    later = made + dt.timedelta(seconds=90)
    assert sweep_lost_alerts(engine, dispatcher, 60, later) == [alert_id]
    assert published() == 1
    # its new message is waiting: the next sweeps leave it alone
    assert sweep_lost_alerts(engine, dispatcher, 60, later + dt.timedelta(seconds=15)) == []
    assert published() == 1
    runtime.engine.dispose()


def test_alerts_list_shows_an_undelivered_alert_with_its_last_error(tmp_path):
    instance = tmp_path / "instance"
    runtime, client, token = clinic_app({"LABINTERP_INSTANCE": str(instance)})
    stack = Stack(runtime, client, token)
    with webhook_receiver([200]) as receiver:
        closed = receiver.url
    register(stack, closed)
    _, [alert_id] = post_and_interpret(stack, critical_panel("LISTED"))
    assert deliver(stack, alert_id, now()).outcome is DeliveryOutcome.RETRYING
    runtime.engine.dispose()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    done = subprocess.run(
        [sys.executable, "-m", "labinterp", "alerts", "list", "--undelivered"],
        cwd=REPO,
        env={**env, "LABINTERP_INSTANCE": str(instance)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.strip().splitlines()
    assert line.startswith(f"{alert_id}  c  LISTED  pending  1 tries  next try ")
    assert line.endswith("connection refused")
