"""The production shape for fault tests: `labinterp serve --no-worker` (gunicorn) and
`labinterp worker` processes on a PostgreSQL and a Redis, and clients posting over HTTP."""

from __future__ import annotations

import contextlib
import copy
import http.client
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from labinterp.db import upgrade_database
from labinterp.demo import SAMPLE_PANELS
from tests.integration.worker_process import (
    free_port,
    labinterp_cli,
    labinterp_process,
    wait_until,
)


def panel_body(n: int, run: str) -> dict[str, Any]:
    """A sample panel (the demo's, in turn) with an accession and a patient of its own."""
    body = copy.deepcopy(SAMPLE_PANELS[n % len(SAMPLE_PANELS)])
    body["accession"] = f"{run}-{n}"
    body["patient"]["id"] = f"{run}-P{n % 97}"
    return body


@dataclass
class Answer:
    accession: str
    status: int  # 0: no answer at all (connection refused or cut)
    retry_after: str | None = None


@dataclass
class Stack:
    env: dict[str, str]
    folder: Path
    database_url: str
    port: int = 0
    token: str = ""
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        engine = create_engine(self.database_url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(statement))]
        finally:
            engine.dispose()

    def statuses(self) -> dict[str, int]:
        return {s: n for s, n in self.sql("SELECT status, count(*) FROM panels GROUP BY status")}

    def interpreted(self) -> int:
        return self.statuses().get("interpreted", 0)

    def post(self, bodies: list[dict[str, Any]], clients: int) -> list[Answer]:
        """POST every body over keep-alive connections from ``clients`` threads."""
        return post_all(self.port, self.token, bodies, clients)

    @contextlib.contextmanager
    def worker(self, *args: str, name: str = "worker") -> Iterator[subprocess.Popen[bytes]]:
        log = self.folder / f"{name}-{len(self.workers)}.log"
        with labinterp_process(["worker", "--loglevel", "INFO", *args], self.env, log) as process:
            self.workers.append(process)
            yield process

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.folder.glob("*.log")))


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process and everything it started (a Celery worker and its pool)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


@contextlib.contextmanager
def stack(folder: Path, database_url: str, broker_url: str, **settings: str) -> Iterator[Stack]:
    """Upgrade the database, make a clinic and its token, start `labinterp serve --no-worker`
    (2 processes x 4 threads); workers are started by the test (:meth:`Stack.worker`)."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "LABINTERP_INSTANCE": str(folder / "instance"),
        "LABINTERP_RATE_LIMIT": "0",
        **settings,
    }
    upgrade_database(database_url)
    labinterp_cli(env, "clinics", "create", "faults")
    token = labinterp_cli(env, "tokens", "create", "--role", "clinic", "--clinic", "faults")
    the_stack = Stack(env, folder, database_url, free_port(), token.strip().splitlines()[-1])
    args = ["serve", "--no-worker", "--port", str(the_stack.port), "--workers", "2"]
    with labinterp_process(args, env, folder / "serve.log"):
        wait_until(lambda: _answers(the_stack.port), 60, 0.1, "labinterp serve")
        yield the_stack


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False


def post_all(port: int, token: str, bodies: list[dict[str, Any]], clients: int) -> list[Answer]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    answers: list[Answer] = []
    lock = threading.Lock()
    work = iter(list(bodies))

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[Answer] = []
        while True:
            with lock:
                body = next(work, None)
            if body is None:
                break
            mine.append(_post(conn, headers, body))
            if mine[-1].status == 0:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.close()
        with lock:
            answers.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def _post(
    conn: http.client.HTTPConnection, headers: dict[str, str], body: dict[str, Any]
) -> Answer:
    try:
        conn.request("POST", "/api/v1/panels", body=json.dumps(body), headers=headers)
        response = conn.getresponse()
        response.read()
        return Answer(body["accession"], response.status, response.getheader("Retry-After"))
    except (OSError, http.client.HTTPException):
        return Answer(body["accession"], 0)


class SteadyLoad:
    """Clients posting new panels back to back until stopped; every answer recorded."""

    def __init__(self, port: int, token: str, clients: int = 6) -> None:
        self.port, self.token, self.clients = port, token, clients
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(clients)]
        self.run_id = f"S{uuid.uuid4().hex[:6]}"

    def __enter__(self) -> SteadyLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self, n: int) -> None:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        i = 0
        while not self._stop.is_set():
            answer = _post(conn, headers, panel_body(i * self.clients + n, self.run_id))
            with self._lock:
                self.answers.append(answer)
            if answer.status != 202:
                conn.close()  # a fresh connection, as a client that saw an error would
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                time.sleep(0.05)
            i += 1
        conn.close()
