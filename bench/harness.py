"""What the end-to-end benchmarks share: they drive labinterp only through its public surfaces.

The `labinterp` command (serve, worker, db upgrade, clinics create, tokens create), HTTP (wrk
with bench/wrk/post_panels.lua) and the `panels` and `interpretations` tables, read with plain
SQL. Nothing here imports labinterp, so a benchmark keeps working while the pipeline behind
those surfaces changes.

Every resource comes from a context manager that releases it even on failure or Ctrl-C: child
processes (each in its own process group, SIGTERM then SIGKILL), the scratch PostgreSQL
database (dropped) and the Redis database (flushed).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
LUA = BENCH / "wrk" / "post_panels.lua"
PANEL = BENCH / "wrk" / "panel.json"

ADMIN_URL = os.environ.get(
    "LABINTERP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("LABINTERP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")


class BenchError(RuntimeError):
    """A benchmark cannot run or went wrong; the message says what and where to look."""


def env_number(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise BenchError(f"{name} must be a number, not {text!r}") from None


def stop_on_sigterm() -> None:
    """A SIGTERM unwinds like Ctrl-C, so every `finally` (processes, database, Redis) runs."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def run_main(main: Callable[[], None]) -> None:
    """Run a benchmark's main; a BenchError is one line on stderr and exit status 2."""
    stop_on_sigterm()
    try:
        main()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as exc:  # everything was stopped, dropped and flushed on the way
        print(f"interrupted ({exc or 'Ctrl-C'}); cleaned up", file=sys.stderr)
        sys.exit(130)


# --- what must be there ----------------------------------------------------------------------


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise BenchError("wrk is not installed (Debian: apt-get install wrk)")
    return path


def require_postgres(admin_url: str = ADMIN_URL) -> str:
    """The server's version; a clear error when it does not answer."""
    import psycopg

    try:
        with psycopg.connect(_psycopg_url(admin_url), connect_timeout=3, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        raise BenchError(
            f"PostgreSQL does not answer at {admin_url} ({str(exc).strip().splitlines()[0]}); "
            "start it or set LABINTERP_BENCH_POSTGRES_URL"
        ) from None
    return str(row[0]) if row else "?"


def require_redis(url: str = REDIS_URL) -> str:
    """The server's version; a clear error when it does not answer."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
    try:
        return str(client.info("server")["redis_version"])
    except redis.RedisError as exc:
        raise BenchError(
            f"Redis does not answer at {url} ({exc}); start it or set LABINTERP_BENCH_REDIS_URL"
        ) from None
    finally:
        client.close()


# --- scratch state ---------------------------------------------------------------------------


def _psycopg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def scratch_postgres(tag: str, admin_url: str = ADMIN_URL) -> Iterator[str]:
    """A database of its own, dropped afterwards; yields its URL."""
    import psycopg

    name = f"labinterp_bench_{tag}_{os.getpid()}"
    admin = _psycopg_url(admin_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlsplit(admin)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def flushed_redis(url: str = REDIS_URL) -> Iterator[str]:
    """The benchmark's Redis database, flushed before (a crashed run's leftovers) and after."""
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


# --- processes -------------------------------------------------------------------------------


def labinterp_argv(*args: str) -> list[str]:
    """The `labinterp` command installed beside this Python (bash scripts/bootstrap)."""
    script = Path(sys.executable).parent / "labinterp"
    if not script.exists():
        raise BenchError(f"no labinterp command beside {sys.executable}: bash scripts/bootstrap")
    return [str(script), *args]


def cli(env: Mapping[str, str], *args: str) -> str:
    """Run one `labinterp` command to completion; the last line of its standard output."""
    done = subprocess.run(
        labinterp_argv(*args),
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    if done.returncode != 0:
        raise BenchError(f"labinterp {' '.join(args)} failed: {done.stderr.strip()}")
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def clinic_token(env: Mapping[str, str]) -> str:
    """A clinic `bench` and a clinic token for it, made with the CLI."""
    cli(env, "clinics", "create", "bench", "--if-not-exists")
    return cli(env, "tokens", "create", "--role", "clinic", "--clinic", "bench", "--name", "bench")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise BenchError(
                f"{self.name} exited with status {self.popen.returncode}; last lines of "
                f"{self.log}:\n{tail(self.log)}"
            )


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def process(name: str, argv: Sequence[str], env: Mapping[str, str], log: Path) -> Iterator[Process]:
    """A child in its own process group (so its own children stop with it), output to ``log``;
    stopped with SIGTERM (then SIGKILL after 20 s) however the block ends."""
    with log.open("ab") as out:
        popen = subprocess.Popen(
            list(argv),
            cwd=REPO,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield Process(name, popen, log)
    finally:
        stop(popen)


class Supervised:
    """A child started again whenever it exits (after 1 s), counting how often: for a helper
    that must outlive a fault it shares with the system under test (see bench/latency.py)."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log: Path):
        self.name, self.log, self.restarts = name, log, 0
        self._argv, self._env = list(argv), {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._popen = self._spawn()
        self._watcher = threading.Thread(target=self._watch, name=f"watch {name}", daemon=True)
        self._watcher.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                self._argv,
                cwd=REPO,
                env=self._env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _watch(self) -> None:
        while not self._stopping.wait(0.2):
            with self._lock:
                if self._popen.poll() is None or self._stopping.is_set():
                    continue
                stop(self._popen, timeout=1)  # what it left in its group
            if self._stopping.wait(1.0):
                return
            with self._lock:
                if not self._stopping.is_set():
                    self.restarts += 1
                    self._popen = self._spawn()

    def check_alive(self) -> None:
        """Always alive: it is started again."""

    def close(self) -> None:
        self._stopping.set()
        self._watcher.join()
        with self._lock:
            stop(self._popen)


@contextmanager
def supervised(
    name: str, argv: Sequence[str], env: Mapping[str, str], log: Path
) -> Iterator[Supervised]:
    child = Supervised(name, argv, env, log)
    try:
        yield child
    finally:
        child.close()


def stop(popen: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``timeout`` seconds."""
    with suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        popen.wait(timeout=timeout)
    # whatever the leader left behind in its group (a Celery child, a beat process)
    with suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGKILL)
    popen.wait()


def cpu_seconds(match: Callable[[int, str], bool]) -> float:
    """User + system CPU seconds of the live processes for which ``match(pgrp, cmdline)``."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if match(int(fields[2]), cmdline):
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_status(url: str, timeout: float = 2) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def wait_ready(base: str, proc: Process, timeout: float = 90) -> None:
    """Until GET /readyz is 200 (database and broker reachable)."""

    def ready() -> bool:
        proc.check_alive()
        return http_status(f"{base}/readyz") == 200

    wait_until(ready, timeout, f"{proc.name} to answer 200 on {base}/readyz")


def log_problems(path: Path, limit: int = 5) -> tuple[int, list[str]]:
    """Lines of a log that look like trouble: ERROR, CRITICAL, Traceback, WARNING, and `serve`
    saying that its worker exited."""
    marks = ("ERROR", "CRITICAL", "Traceback", "WARNING", "exited after")
    found = [
        line.strip()
        for line in path.read_text(errors="replace").splitlines()
        if any(mark in line for mark in marks)
    ]
    return len(found), found[:limit]


def report_logs(*logs: Path) -> None:
    for path in logs:
        count, first = log_problems(path)
        if count:
            print(f"  ! {path.name}: {count} warning/error line(s), first: ")
            for line in first:
                print(f"      {line[:200]}")
        else:
            print(f"  {path.name}: no warning or error lines")


# --- wrk -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    statuses: dict[int, int]
    errors: dict[str, int]
    latency_ms: dict[str, float]

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def problems(self) -> str:
        bad = {s: n for s, n in self.statuses.items() if not 200 <= s < 300}
        errors = {k: v for k, v in self.errors.items() if v and k != "status"}
        parts = []
        if bad:
            parts.append(f"non-2xx responses {bad}")
        if errors:
            parts.append(f"socket errors {errors}")
        return "; ".join(parts)


def run_wrk(
    base: str,
    token: str,
    *,
    connections: int,
    seconds: float,
    prefix: str,
    delay_ms: float = 0,
    budget: int = 0,
    threads: int = 0,
    until: Callable[[], bool] | None = None,
    log: Path | None = None,
) -> WrkResult:
    """POST panels with bench/wrk/post_panels.lua for ``seconds`` (or until ``until()`` is
    true, polled twice a second: wrk is then stopped with SIGINT, which still prints its
    figures); the figures its done() prints."""
    threads = threads or (2 if connections % 2 == 0 else 1)
    if connections % threads:  # wrk opens connections // threads per thread: fewer than asked
        raise BenchError(f"wrk: {connections} connections do not divide among {threads} threads")
    per_thread = -(-budget // threads) if budget else 0
    argv = [
        require_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(LUA),
        "-H",
        f"Authorization: Bearer {token}",
        base,
        "--",
        str(PANEL),
        prefix,
        f"{delay_ms:.3f}",
        str(per_thread),
    ]
    popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if until is not None:
            while popen.poll() is None:
                if until():
                    popen.send_signal(signal.SIGINT)
                    break
                time.sleep(0.5)
        stdout, stderr = popen.communicate(timeout=seconds + 120)
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait()
    if log is not None:
        with log.open("a") as out:
            shown = " ".join(argv[1:]).replace(token, "TOKEN")
            out.write(f"$ wrk {shown}\n{stdout}{stderr}\n")
    line = next((x for x in stdout.splitlines() if x.startswith("WRK-RESULT ")), None)
    if popen.returncode != 0 or line is None:
        raise BenchError(f"wrk failed (status {popen.returncode}): {stderr or stdout}")
    data = json.loads(line.removeprefix("WRK-RESULT "))
    return WrkResult(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        statuses={int(k): int(v) for k, v in data["statuses"].items()},
        errors=dict(data["errors"]),
        latency_ms={k: v / 1000 for k, v in data["latency_us"].items()},
    )


# --- reading the database --------------------------------------------------------------------


def _moment(value: Any) -> float:
    """A stored timestamp as seconds since the epoch (SQLite keeps naive UTC text)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return float(value.timestamp())


def sqlite_file(instance: Path) -> Path:
    return instance / "labinterp.db"


def query(database: str | Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of one read-only query on PostgreSQL (a URL) or the embedded SQLite file (a path)."""
    if isinstance(database, Path):
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(_psycopg_url(database)) as pg:
        return pg.execute(sql).fetchall()  # type: ignore[arg-type]


@dataclass(frozen=True)
class PanelRow:
    id: str
    status: str
    created: float  # panels.created_at
    interpreted: float | None  # the first interpretations.created_at of the panel


def panel_rows(database: str | Path) -> dict[str, PanelRow]:
    """Every panel with its status, its stamp and its first interpretation's stamp."""
    rows = query(
        database,
        "SELECT p.id, p.status, p.created_at, MIN(i.created_at) FROM panels p "
        "LEFT JOIN interpretations i ON i.panel_id = p.id GROUP BY p.id, p.status, p.created_at",
    )
    return {
        str(r[0]): PanelRow(str(r[0]), r[1], _moment(r[2]), None if r[3] is None else _moment(r[3]))
        for r in rows
    }


def status_counts(database: str | Path) -> dict[str, int]:
    rows = query(database, "SELECT status, COUNT(*) FROM panels GROUP BY status")
    return {str(status): int(n) for status, n in rows}


def interpretation_span(database: str | Path) -> tuple[int, float | None, float | None]:
    """How many interpretations, the first and the last created_at."""
    rows = query(database, "SELECT COUNT(*), MIN(created_at), MAX(created_at) FROM interpretations")
    n, first, last = rows[0]
    return (
        int(n),
        None if first is None else _moment(first),
        None if last is None else _moment(last),
    )


# --- figures ---------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of an ascending sequence."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def distribution_ms(seconds: Sequence[float]) -> dict[str, float]:
    ordered = sorted(s * 1000 for s in seconds)
    return {
        "n": len(ordered),
        "p50": percentile(ordered, 50),
        "p90": percentile(ordered, 90),
        "p99": percentile(ordered, 99),
        "max": ordered[-1] if ordered else math.nan,
    }


def fmt_ms(d: Mapping[str, float]) -> str:
    return (
        f"p50 {d['p50']:.1f} ms, p90 {d['p90']:.1f} ms, p99 {d['p99']:.1f} ms, "
        f"max {d['max']:.1f} ms (n={int(d['n'])})"
    )


@contextmanager
def work_dir(name: str) -> Iterator[Path]:
    """Scratch folder for instances, logs and stamps: removed afterwards, unless BENCH_KEEP
    names a folder to keep them in (for a look at the logs and the SQLite file)."""
    keep = os.environ.get("BENCH_KEEP", "").strip()
    if keep:
        folder = Path(keep).resolve() / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        folder.mkdir(parents=True)
        print(f"keeping logs and instances in {folder}")
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix=f"labinterp-{name}-") as tmp:
        yield Path(tmp)
