"""Durable ingest: POST /api/v1/panels through the whole stack vs a bare Flask JSON endpoint.

Both are driven the same way (Flask's test client, one thread) in the same run, so the ratio
shows what auth, validation, the clinical acceptance and the one transaction cost per panel.
On PostgreSQL when LABINTERP_BENCH_POSTGRES_URL (or the test default) answers.
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: labinterp, tests

import redis
from flask import Flask, request
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from labinterp.api.jsonio import loads
from labinterp.demo import SAMPLE_PANELS
from tests.api.conftest import clinic_app

N = int(os.environ.get("BENCH_N", 1000))


def bodies() -> list[dict]:
    out = []
    for n in range(N):
        panel = copy.deepcopy(SAMPLE_PANELS[0])
        panel["accession"] = f"BENCH-{n}"
        out.append(panel)
    return out


def bare() -> float:
    app = Flask("bare")

    @app.post("/panels")
    def panels():  # type: ignore[no-untyped-def]
        return {"accession": loads(request.get_data())["accession"]}, 202

    client = app.test_client()
    payloads = bodies()
    start = time.perf_counter()
    for body in payloads:
        client.post("/panels", json=body)
    return N / (time.perf_counter() - start)


def full(env: dict[str, str]) -> float:
    runtime, client, token = clinic_app(env, "bench")
    headers = {"Authorization": f"Bearer {token}"}
    payloads = bodies()
    start = time.perf_counter()
    for body in payloads:
        response = client.post("/api/v1/panels", json=body, headers=headers)
        assert response.status_code == 202, response.get_json()
    rate = N / (time.perf_counter() - start)
    runtime.engine.dispose()
    return rate


@contextmanager
def scratch_postgres(admin_url: str) -> Iterator[str]:
    """A database of its own for the run, dropped afterwards."""
    name = f"labinterp_bench_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = bare()
        print(f"baseline bare Flask JSON endpoint: {base:,.0f} req/s")
        sqlite = full({"LABINTERP_INSTANCE": tmp, "LABINTERP_RATE_LIMIT": "0"})
        print(
            f"POST /api/v1/panels, SQLite + folder broker: {sqlite:,.0f} panels/s "
            f"({base / sqlite:.1f}x the baseline's time)"
        )
        admin = os.environ.get(
            "LABINTERP_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        )
        redis_url = os.environ.get("LABINTERP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
        try:
            with scratch_postgres(admin) as pg:
                rate = full(
                    {
                        "LABINTERP_INSTANCE": tmp,
                        "DATABASE_URL": pg,
                        "CELERY_BROKER_URL": redis_url,
                        "LABINTERP_RATE_LIMIT": "0",
                    }
                )
            redis.Redis.from_url(redis_url).flushdb()  # the tasks no worker will ever take
            print(
                f"POST /api/v1/panels, PostgreSQL + Redis: {rate:,.0f} panels/s "
                f"({base / rate:.1f}x the baseline's time)"
            )
        except Exception as exc:  # no PostgreSQL or Redis here: say so, don't fail
            print(f"PostgreSQL + Redis skipped: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
