"""The clinician's review queue with 100,000 panels in the clinic (issue 6: "well under 100 ms").

    .venv/bin/python bench/review_queue.py [--panels 100000]

A scratch PostgreSQL database, migrated with `labinterp db upgrade`, is filled by
bench/queue_data.py (about a minute): `--panels` panels in one clinic (40 % of them in the
queue: 2 % of those critical, 10 % urgent, the rest routine; half of the queue reviewed
already), and the NHANES templates (5,905 panels) in a second clinic. Then, in one run:

1. In process, BENCH_REPS times each after a warm-up, for each shape of the queue (pending
   page 1 and page 200, `status=all`, `priority=critical`, `flag=hypokalemia`,
   `alert=undelivered`, a clinician of both clinics at page 1 and page 200, and the filter
   links' counts the web page asks for):
   the service call `services.review.review_queue` (its queries, its audit write and its
   commit: one unit of work), and each statement the repository sends, run alone on a driver
   connection, so that the page and the count are timed apart. Baselines in the same run:
   `SELECT 1` on that connection; the service's fixed cost, an audit write and commit of the
   same detail.
2. EXPLAIN (ANALYZE, BUFFERS) of each statement: in full for the default (pending) queue, one
   line for the others (the nodes, the rows each sort takes in, the execution time).
3. Over HTTP, wrk (2 threads, BENCH_CONNECTIONS connections, BENCH_SECONDS after a 2 s warm-up)
   against `labinterp serve --no-worker` (gunicorn, 2 processes x 4 threads) with a
   clinician's token: each shape's GET /api/v1/review-queue, beside the same server's
   GET /healthz as the baseline; then one connection alone, for the latency of one clinician.
4. The default shape's count beside a count capped at 1,001 rows, then both again after an
   UPDATE of every pending row: the count's index-only scan must now visit the heap for each
   row, as it does for the pages a busy worker changed since autovacuum last ran.

Figures only: nothing here fails on a time. Imports labinterp (unlike the end-to-end benches)
because the fill and the in-process timings call its services.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness as h  # bench/ is on the path: scripts run as `python bench/NAME.py`
import psycopg
import queue_data
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from labinterp.db import make_engine, make_session_factory, upgrade_database
from labinterp.domain import Priority
from labinterp.services import audit
from labinterp.services import review as review_service
from labinterp.services.accounts import resolve_token
from labinterp.services.audit import Actor

REPS = int(h.env_number("BENCH_REPS", 200))
SECONDS = h.env_number("BENCH_SECONDS", 10)
CONNECTIONS = int(h.env_number("BENCH_CONNECTIONS", 16))
WARMUP = 2.0
GET_LUA = h.BENCH / "wrk" / "get.lua"


@dataclass(frozen=True)
class Shape:
    name: str
    both: bool  # the clinician of both clinics (else of the big one)
    arguments: Mapping[str, Any] = field(default_factory=dict)  # review_queue's
    query: str | None = ""  # the same over HTTP (None: not an API shape)


SHAPES = [
    Shape("pending, page 1 (the default)", False),
    Shape("pending, page 200", False, {"page": 200}, "?page=200"),
    Shape("all, page 1", False, {"status": "all"}, "?status=all"),
    Shape("priority=critical", False, {"priorities": [Priority.CRITICAL]}, "?priority=critical"),
    Shape("flag=hypokalemia", False, {"flags": ["hypokalemia"]}, "?flag=hypokalemia"),
    Shape("alert=undelivered", False, {"undelivered_alerts": True}, "?alert=undelivered"),
    Shape("two clinics, page 1", True),
    Shape("two clinics, page 200", True, {"page": 200}, "?page=200"),
    Shape("web page: with the filter counts", False, {"with_counts": True}, None),
]


@dataclass
class Timed:
    service: dict[str, float]
    statements: list[tuple[str, dict[str, float]]]  # (what, distribution) per statement


def timed(call: Callable[[], object], reps: int = REPS, warm: int = 10) -> dict[str, float]:
    for _ in range(warm):
        call()
    seconds = []
    for _ in range(reps):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return h.distribution_ms(seconds)


@contextmanager
def sent_statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """(SQL, parameters) of every statement the engine sends while the block runs."""
    sent: list[tuple[str, Any]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many):  # type: ignore[no-untyped-def]
        sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def queue_statements(engine: Engine, actor: Actor, shape: Shape) -> list[tuple[str, str, Any]]:
    """(label, SQL, parameters) of the statements of one queue call that read panels."""
    with make_session_factory(engine)() as session, sent_statements(engine) as sent:
        review_service.review_queue(session, actor, **shape.arguments)
    out = []
    for statement, parameters in sent:
        if "FROM panels" not in statement:
            continue
        flat = " ".join(statement.split())
        label = (
            "page"
            if "LIMIT" in flat
            else "count"
            if flat.startswith("SELECT count(*)")
            else "filter counts"
        )
        out.append((label, statement, parameters))
    return out


def in_process(
    engine: Engine, actors: Mapping[bool, Actor], panel_ids: Sequence[str]
) -> tuple[Timed, dict[str, Timed]]:
    """The baselines, then every shape: the service call and its statements, each timed.
    ``panel_ids``: a page's, for the detail of the audit write timed alone."""
    factory = make_session_factory(engine)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()

        def run(statement: str, parameters: Any) -> None:
            cursor.execute(statement, parameters)
            cursor.fetchall()
            raw.rollback()

        def audited() -> None:  # what every audited read pays, whatever it read
            with factory() as session:
                detail = {"panel_ids": list(panel_ids), "status": "pending"}
                audit.record(session, actors[False], "review_queue.read", detail=detail)
                session.commit()

        baseline = Timed(timed(audited), [("SELECT 1", timed(lambda: run("SELECT 1", None)))])
        results = {}
        for shape in SHAPES:
            actor = actors[shape.both]

            def call(actor: Actor = actor, shape: Shape = shape) -> None:
                with factory() as session:
                    review_service.review_queue(session, actor, **shape.arguments)

            statements = [
                (label, timed(lambda s=sql, p=params: run(s, p)))
                for label, sql, params in queue_statements(engine, actor, shape)
            ]
            results[shape.name] = Timed(timed(call), statements)
            print(f"  timed {shape.name}", flush=True)
        return baseline, results
    finally:
        raw.close()


def explain(engine: Engine, actors: Mapping[bool, Actor]) -> list[tuple[str, str, str, float]]:
    """EXPLAIN (ANALYZE, BUFFERS) of every statement of every shape, printed in full for the
    default shape; (shape, statement, the plan in one line, execution ms) of each."""
    summary = []
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for shape in SHAPES:
            for label, statement, parameters in queue_statements(engine, actors[shape.both], shape):
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters)
                (document,) = cursor.fetchone()
                plan = document[0]
                summary.append((shape.name, label, describe(plan), plan["Execution Time"]))
                if shape is SHAPES[0]:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
                    # "  : " before each line: run_all.py's paste keeps none of them
                    text = "\n".join(f"  : {row[0]}" for row in cursor.fetchall())
                    print(f"\nEXPLAIN (ANALYZE, BUFFERS), {shape.name}, {label}:\n{text}")
                raw.rollback()
    finally:
        raw.close()
    return summary


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def describe(document: dict[str, Any]) -> str:
    """The plan's scans, joins and sorts in one line; a sort says how many rows it took in."""
    parts = []
    for node in nodes(document["Plan"]):
        kind = node["Node Type"]
        if kind in ("Materialize", "Memoize", "Limit", "Aggregate", "Gather", "Gather Merge"):
            continue
        text = kind
        if "Index Name" in node:
            text += f" {node['Index Name']}"
        elif "Relation Name" in node:
            text += f" {node['Relation Name']}"
        if kind in ("Sort", "Incremental Sort"):
            fed = node["Plans"][0]["Actual Rows"] * node["Plans"][0]["Actual Loops"]
            text += f" of {fed:,} rows"
        elif kind.endswith("Scan"):
            text += f" ({node['Actual Rows'] * node['Actual Loops']:,} rows)"
        parts.append(text)
    return " > ".join(parts)


# --- over HTTP -------------------------------------------------------------------------------


def wrk_get(
    base: str, path: str, token: str, connections: int, seconds: float, log: Path
) -> h.WrkResult:
    threads = 2 if connections % 2 == 0 else 1
    argv = [
        h.require_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(GET_LUA),
        "-H",
        f"Authorization: Bearer {token}",
        base,
        "--",
        path,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    with log.open("a") as out:
        shown = " ".join(argv[1:]).replace(token, "TOKEN")
        out.write(f"$ wrk {shown}\n{done.stdout}{done.stderr}\n")
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK-RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise h.BenchError(f"wrk failed (status {done.returncode}): {done.stderr or done.stdout}")
    data = json.loads(line.removeprefix("WRK-RESULT "))
    return h.WrkResult(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        statuses={int(k): int(v) for k, v in data["statuses"].items()},
        errors=dict(data["errors"]),
        latency_ms={k: v / 1000 for k, v in data["latency_us"].items()},
    )


def over_http(
    tmp: Path, url: str, tokens: Mapping[bool, str]
) -> list[tuple[str, str, int, h.WrkResult]]:
    """(name, path, connections, result) for /healthz and each API shape, then both again
    on one connection."""
    port = h.free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "LABINTERP_INSTANCE": str(tmp / "instance"),
        "DATABASE_URL": url,
        "CELERY_BROKER_URL": "",  # the folder broker: nothing here publishes
        "LABINTERP_RATE_LIMIT": "0",
    }
    log, wrk_log = tmp / "serve.log", tmp / "wrk.log"
    rows = []
    argv = h.labinterp_argv("serve", "--no-worker", "--port", str(port))
    with h.process("labinterp serve --no-worker", argv, env, log) as serve:
        h.wait_ready(base, serve)
        plan = [("GET /healthz (baseline)", "/healthz", False)] + [
            (s.name, f"/api/v1/review-queue{s.query}", s.both)
            for s in SHAPES
            if s.query is not None
        ]
        for connections in (CONNECTIONS, 1):
            for name, path, both in plan[: None if connections == CONNECTIONS else 2]:
                wrk_get(base, path, tokens[both], connections, WARMUP, wrk_log)
                result = wrk_get(base, path, tokens[both], connections, SECONDS, wrk_log)
                if result.problems():
                    print(f"  ! {name}: {result.problems()}")
                rows.append((name, path, connections, result))
                print(f"  wrk {connections} x {path}: {result.rate:,.0f} req/s", flush=True)
    h.report_logs(log)
    return rows


# --- the count: capped, and when the visibility map is not set ------------------------------

CAP = 1000  # a capped count: "1,000+" beyond it


def capped(statement: str) -> str:
    """The count statement as a count of at most CAP + 1 rows."""
    head = "SELECT count(*) AS count_1"
    if not statement.startswith(head):
        raise h.BenchError(f"the count statement changed shape: {statement[:80]!r}")
    # the repository's own SQL text, rewrapped; its values stay bound parameters
    inner = "SELECT 1" + statement[len(head) :]
    return f"SELECT count(*) FROM ({inner} LIMIT {CAP + 1}) AS capped"  # noqa: S608


def counts(engine: Engine, actor: Actor, url: str) -> dict[str, dict[str, float]]:
    """The default shape's count and a capped count, before and after an UPDATE of every
    pending row (its pages no longer all-visible: an index-only scan visits the heap for each
    row until VACUUM runs)."""
    ((_, statement, parameters),) = [
        s for s in queue_statements(engine, actor, SHAPES[0]) if s[0] == "count"
    ]
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()

        def run(sql: str) -> Callable[[], None]:
            def once() -> None:
                cursor.execute(sql, parameters)
                cursor.fetchall()
                raw.rollback()

            return once

        out = {
            "count": timed(run(statement)),
            f"count capped at {CAP:,}": timed(run(capped(statement))),
        }
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
            conn.execute(
                "UPDATE panels SET updated_at = updated_at WHERE review_status = 'pending'"
            )
        out["count, every pending row just updated"] = timed(run(statement))
        out[f"count capped at {CAP:,}, every pending row just updated"] = timed(
            run(capped(statement))
        )
        return out
    finally:
        raw.close()


# --- figures ---------------------------------------------------------------------------------


def ms(d: Mapping[str, float]) -> str:
    return f"{d['p50']:.2f} / {d['p99']:.2f}"


def print_tables(
    filled: queue_data.Filled,
    baseline: Timed,
    results: Mapping[str, Timed],
    plans: Sequence[tuple[str, str, str, float]],
    counted: Mapping[str, Mapping[str, float]],
    http: Sequence[tuple[str, str, int, h.WrkResult]],
) -> None:
    print("\nthe data (panels per clinic, review status and priority):\n")
    print("| clinic | review status | priority | panels |")
    print("| --- | --- | --- | --- |")
    for clinic, status, priority, count in filled.counts:
        print(f"| {clinic} | {status} | {priority} | {count:,} |")

    audit_write = baseline.service
    (_, select_one) = baseline.statements[0]
    print(
        f"\nin process, {REPS} calls each, ms p50 / p99; ratio: the service call's p50 over "
        "the audit write's (baselines: the first two rows, in the same run):\n"
    )
    print("| shape | service call | its page query | its count | filter counts | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| baseline: SELECT 1 on the same connection | - | {ms(select_one)} | - | - | - |")
    print(
        f"| baseline: an audit write and its commit alone | {ms(audit_write)} | - | - | - | 1.0 |"
    )
    for shape in SHAPES:
        got = results[shape.name]
        by = dict(got.statements)
        cells = [ms(by[k]) if k in by else "-" for k in ("page", "count", "filter counts")]
        print(
            f"| {shape.name} | {ms(got.service)} | {' | '.join(cells)} | "
            f"{got.service['p50'] / audit_write['p50']:.1f} |"
        )
    api = [results[s.name].service for s in SHAPES if s.query is not None]
    print(
        f"| slowest API shape (issue 6: well under 100 ms) | {max(d['p50'] for d in api):.2f} / "
        f"{max(d['p99'] for d in api):.2f} | | | | |"
    )

    print("\nthe count of the default shape, ms p50 / p99:\n")
    print("| statement | p50 / p99 |")
    print("| --- | --- |")
    for name, d in counted.items():
        print(f"| {name} | {ms(d)} |")

    print("\nplans, EXPLAIN ANALYZE (rows each scan returned, rows each sort took in):\n")
    print("| shape | statement | plan | execution |")
    print("| --- | --- | --- | --- |")
    for shape_name, label, plan, execution in plans:
        print(f"| {shape_name} | {label} | {plan} | {execution:.1f} ms |")

    print(
        f"\nover HTTP: wrk, 2 threads x {CONNECTIONS} connections (one connection: 1 thread), "
        f"{SECONDS:g} s after a {WARMUP:g} s warm-up; labinterp serve --no-worker (gunicorn "
        "2 processes x 4 threads):\n"
    )
    print("| GET | connections | req/s | p50 | p99 | req/s ratio to /healthz |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, path, connections, result in http:
        base = next(r for n, _, c, r in http if n.startswith("GET /healthz") and c == connections)
        lat = result.latency_ms
        print(
            f"| {name}: `{path}` | {connections} | {result.rate:,.0f} | {lat['p50']:.1f} ms | "
            f"{lat['p99']:.1f} ms | {result.rate / base.rate:.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--panels",
        type=int,
        default=int(h.env_number("BENCH_PANELS", 100_000)),
        help="panels in the big clinic (default 100000, or BENCH_PANELS)",
    )
    args = parser.parse_args()
    began = time.perf_counter()
    h.require_wrk()
    pg = h.require_postgres()
    print("review queue (bench/review_queue.py)")
    print(
        f"parameters: --panels {args.panels:,}, BENCH_REPS={REPS}, BENCH_SECONDS={SECONDS:g}, "
        f"BENCH_CONNECTIONS={CONNECTIONS}; nproc {os.cpu_count()}; PostgreSQL {pg}; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    with h.work_dir("review-queue") as tmp, h.scratch_postgres("queue") as url:
        upgrade_database(url)
        started = time.perf_counter()
        filled = queue_data.fill(url, args.panels, queue_data.Mix())
        print(f"filled in {time.perf_counter() - started:.0f} s", flush=True)
        engine = make_engine(url)
        try:
            with Session(engine) as session:
                actors = {
                    False: resolve_token(session, filled.clinician),
                    True: resolve_token(session, filled.clinician_of_both),
                }
                session.commit()
                page = review_service.review_queue(session, actors[False])
            panel_ids = [str(item.panel_id) for item in page.items]
            baseline, results = in_process(engine, actors, panel_ids)
            plans = explain(engine, actors)
            http = over_http(tmp, url, {False: filled.clinician, True: filled.clinician_of_both})
            counted = counts(engine, actors[False], url)  # last: it updates 20,000 rows
        finally:
            engine.dispose()
    print_tables(filled, baseline, results, plans, counted, http)
    print(f"\n(whole run: {time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    h.run_main(main)
