"""A real HTTP server on 127.0.0.1, in a thread, standing in for a clinic's webhook."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived


class WebhookReceiver:
    """Records every POST as it arrives, then answers the next status of ``answers`` (the
    last one for ever after), after ``delay`` seconds; with ``hold``, keeps every request
    open without an answer until :meth:`release` (a webhook that hangs)."""

    def __init__(
        self, answers: Sequence[int] = (200,), delay: float = 0.0, hold: bool = False
    ) -> None:
        self.answers = list(answers)
        self.delay = delay
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        if not hold:
            self._released.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(Received(dict(self.headers), body, time.time()))
                    n = len(receiver.requests)
                receiver._released.wait(120)
                time.sleep(receiver.delay)
                status = receiver.answers[min(n, len(receiver.answers)) - 1]
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the client gave up waiting
                    pass

            def log_message(self, *args: object) -> None:  # quiet test output
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/labinterp"

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def release(self) -> None:
        self._released.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def webhook_receiver(
    answers: Sequence[int] = (200,), delay: float = 0.0, hold: bool = False
) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(answers, delay, hold)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
