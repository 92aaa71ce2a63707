"""A broker behind a network partition: it accepts connections and never answers.

A clinic's POST never waits for it (the panel is durable once committed, and a worker's relay
publishes it), and /readyz must say the broker is the problem instead of hanging.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import auth, clinic_app, sample_panel
from tests.api.test_ratelimit import _fresh_window
from tests.integration.worker_process import wait_until


class SilentBroker:
    """A TCP listener that takes every connection and every byte and never replies."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._lock = threading.Lock()
        self.received = 0  # bytes the API process sent
        self.hung_up = 0  # connections the API process gave up on
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self._server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._swallow, args=(conn,), daemon=True).start()

    def _swallow(self, conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                with self._lock:
                    if not data:
                        self.hung_up += 1
                        return
                    self.received += len(data)

    def close(self) -> None:
        self._stop.set()
        self._server.close()


@pytest.fixture
def silent_broker() -> Iterator[SilentBroker]:
    broker = SilentBroker()
    yield broker
    broker.close()


def test_a_broker_that_never_answers_does_not_hold_up_a_post(tmp_path: Path, silent_broker):
    _, client, token = clinic_app(
        {
            "LABINTERP_INSTANCE": str(tmp_path),
            "LABINTERP_RATE_LIMIT": "0",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{silent_broker.port}/0",
        }
    )
    for accession in ("PART-1", "PART-2"):
        posted = client.post(
            "/api/v1/panels", json=sample_panel(accession=accession), headers=auth(token)
        )
        assert posted.status_code == 202 and posted.get_json()["status"] == "queued"
    # the API never asks the broker: a worker's relay publishes the panels
    assert silent_broker.received == 0

    listed = client.get("/api/v1/panels?status=queued", headers=auth(token)).get_json()
    assert {p["accession"] for p in listed["items"]} == {"PART-1", "PART-2"}  # both durable

    ready = client.get("/readyz")
    assert ready.status_code == 503
    checks = ready.get_json()["checks"]
    assert checks["database"]["ok"] is True
    assert checks["broker"] == {"ok": False, "detail": "timed out"}  # no exception text


def test_a_silent_redis_is_asked_once_by_the_rate_limiter_then_left_alone(
    tmp_path: Path, silent_broker
):
    """The limiter gives up on a Redis that does not answer after one short try, counts in
    the process meanwhile (the limit still holds), and does not ask again on every request."""
    _, client, token = clinic_app(
        {
            "LABINTERP_INSTANCE": str(tmp_path),
            "LABINTERP_RATE_LIMIT": "3",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{silent_broker.port}/0",
        }
    )
    _fresh_window()  # all four requests in one minute's window
    statuses = [client.get("/api/v1/panels", headers=auth(token)).status_code]
    wait_until(lambda: silent_broker.hung_up > 0, 30, 0.05, "the limiter to give up on Redis")
    asked = silent_broker.received
    statuses += [client.get("/api/v1/panels", headers=auth(token)).status_code for _ in range(3)]
    assert statuses == [200, 200, 200, 429]
    assert silent_broker.received == asked, "every request asked the silent Redis again"
