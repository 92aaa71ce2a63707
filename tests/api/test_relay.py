"""The relay publishes what the API accepted: each panel once, many per message; what the
broker refuses stays for the next round, never lost."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import func, select

from labinterp.models import Panel
from labinterp.services.relay import relay_unpublished
from tests.api.conftest import auth, sample_panel


class Broker:
    """A dispatcher that records the messages it is asked to send, or refuses them."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.messages: list[list[uuid.UUID]] = []

    def publish_now(self, ids, enqueued_at):  # type: ignore[no-untyped-def]
        ids = list(ids)
        if self.refuse:
            return ids
        self.messages.append(ids)
        return []


def _post(client, token, n):  # type: ignore[no-untyped-def]
    response = client.post(
        "/api/v1/panels", json=sample_panel(accession=f"R-{n}"), headers=auth(token)
    )
    assert response.status_code == 202
    return uuid.UUID(response.get_json()["id"])


def _unpublished(runtime) -> int:  # type: ignore[no-untyped-def]
    with runtime.session_factory() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Panel).where(Panel.enqueued_at.is_(None))
            )
        )


def test_every_accepted_panel_is_published_once_in_few_messages(client, tokens, runtime):
    ids = [_post(client, tokens.clinic, n) for n in range(12)]
    assert _unpublished(runtime) == 12  # a POST never talks to the broker
    broker = Broker()
    first = relay_unpublished(runtime.engine, broker, dt.datetime.now(dt.UTC), limit=5)
    assert (first.published, first.full) == (5, True)
    while relay_unpublished(runtime.engine, broker, dt.datetime.now(dt.UTC), limit=5).published:
        pass
    published = [i for message in broker.messages for i in message]
    assert sorted(published) == sorted(ids) and len(broker.messages) == 3
    assert _unpublished(runtime) == 0
    assert relay_unpublished(runtime.engine, broker, dt.datetime.now(dt.UTC)).published == 0


def test_panels_the_broker_refused_wait_for_the_next_round(client, tokens, runtime):
    ids = [_post(client, tokens.clinic, n) for n in range(3)]
    refused = relay_unpublished(runtime.engine, Broker(refuse=True), dt.datetime.now(dt.UTC))
    assert (refused.published, refused.unsent) == (0, 3)
    assert _unpublished(runtime) == 3
    broker = Broker()
    assert relay_unpublished(runtime.engine, broker, dt.datetime.now(dt.UTC)).published == 3
    assert sorted(broker.messages[0]) == sorted(ids)
