"""Re-processing history on PostgreSQL + Redis, beside the floor any re-processing must pay.

For each N (``BENCH_SIZES``, default 10,000 and 100,000), on a scratch PostgreSQL database:

1. N interpreted panels, resampled from the NHANES 2017-18 people (bench/queue_data.py's
   set-based filler: 5,905 templates posted and interpreted through labinterp's services,
   then cloned with COPY and INSERT ... SELECT), in the clinic ``bench-queue``.
2. The floor, on the same database: read the result rows of those N panels with
   ``COPY ... TO STDOUT``, and write N interpretation rows (the templates' own bodies, so the
   same bytes) with ``COPY ... FROM STDIN`` into a table made ``LIKE interpretations
   INCLUDING ALL`` (the same indexes), committed.
3. ``labinterp reprocess --ruleset 2026.2 --clinic bench-queue --wait``, a dry run and then a
   real run, worked by one ``labinterp worker --concurrency 2`` (the machine's 2 cores)
   through Redis. The rate is N over the job's own time (created to finished, read from its
   row: planning, queueing and every chunk); the ratio is that rate over the floor's.
4. Peak RSS of the worker (its largest process, and its whole group) sampled every 0.1 s,
   and of the CLI (``/usr/bin/time``): it must not grow with N.
5. ``labinterp import`` of a generated CSV of N panels (NHANES people resampled, one row per
   result), with no worker running: panels/s and its peak RSS; only for N up to
   ``BENCH_IMPORT_MAX`` (default 100,000: an import of 10^6 panels takes about 20 minutes).

``BENCH_SMOKE=1``: one tiny size (300 panels), seconds; what the CI's smoke test runs.
``BENCH_IMPORT_ONLY=1``: step 5 alone for each size (e.g. ``BENCH_SIZES=1000000``: the import of
10^6 panels without the half hour of filling and re-processing before it).

Run: ``.venv/bin/python bench/reprocess.py``. Needs PostgreSQL and Redis (see README.md).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import os
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    BenchError,
    cli,
    flushed_redis,
    labinterp_argv,
    process,
    require_postgres,
    require_redis,
    run_main,
    scratch_postgres,
    wait_until,
    work_dir,
)
from queue_data import BIG, NHANES, Mix, fill

RULESET = "2026.2"
SMOKE_SIZE = 300


@dataclass
class Row:
    panels: int
    floor_read_s: float
    floor_write_s: float
    dry_s: float
    real_s: float
    changed: int
    worker_rss_mb: float  # the largest process of the worker's group
    worker_group_mb: float  # the whole group
    cli_rss_mb: float
    import_rate: float
    import_rss_mb: float

    @property
    def floor_rate(self) -> float:
        return self.panels / (self.floor_read_s + self.floor_write_s)

    @property
    def real_rate(self) -> float:
        return self.panels / self.real_s

    @property
    def dry_rate(self) -> float:
        return self.panels / self.dry_s


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def measure_floor(url: str) -> tuple[float, float]:
    """Seconds to COPY out the clinic's result rows, and to COPY in as many interpretation
    rows as it has panels (the COPY text built before the clock starts)."""
    with psycopg.connect(_plain(url)) as conn:
        clinic = conn.execute("SELECT id FROM clinics WHERE name = %s", (BIG,)).fetchone()
        assert clinic is not None
        panels = conn.execute(
            "SELECT p.id, v.id FROM panels p JOIN panel_revisions v "
            "ON v.panel_id = p.id AND v.revision = p.current_revision WHERE p.clinic_id = %s",
            (clinic[0],),
        ).fetchall()
        # the interpretations' own bodies (the same bytes as those the jobs write)
        bodies = [
            row[0] for row in conn.execute("SELECT body::text FROM interpretations LIMIT 10000")
        ]
        conn.execute("CREATE TABLE floor_interpretations (LIKE interpretations INCLUDING ALL)")
        conn.commit()
        job = uuid.uuid4()
        now = dt.datetime.now(dt.UTC).isoformat()
        buffer = io.StringIO()
        for n, (panel_id, revision_id) in enumerate(panels):
            body = bodies[n % len(bodies)].replace("\\", "\\\\")
            buffer.write(
                f"{uuid.uuid4()}\t{panel_id}\t{revision_id}\t1\t{RULESET}\t{now}\tnormal\t"
                f"routine\t{body}\t{job}\n"
            )
        text = buffer.getvalue().encode()

        started = time.perf_counter()
        with conn.cursor().copy(
            "COPY (SELECT r.* FROM results r JOIN panel_revisions v ON v.id = r.revision_id "
            "JOIN panels p ON p.id = v.panel_id AND p.current_revision = v.revision "
            "WHERE p.clinic_id = %s) TO STDOUT",
            (clinic[0],),
        ) as copy:
            for _ in copy:
                pass
        read = time.perf_counter() - started

        started = time.perf_counter()
        with conn.cursor().copy(
            "COPY floor_interpretations (id, panel_id, revision_id, revision, ruleset, "
            "created_at, status, priority, body, job_id) FROM STDIN"
        ) as copy:
            copy.write(text)
        conn.commit()
        write = time.perf_counter() - started
        conn.execute("DROP TABLE floor_interpretations")
        conn.commit()
    return read, write


class RssSampler:
    """Peak RSS of a process group: its largest process, and the group's sum."""

    def __init__(self, pgid: int, every: float = 0.1):
        self.pgid, self.every = pgid, every
        self.largest = self.group = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def reset(self) -> None:
        self.largest = self.group = 0

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            sizes = []
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    stat = (entry / "stat").read_text()
                    if int(stat[stat.rindex(")") + 2 :].split()[2]) != self.pgid:
                        continue
                    status = (entry / "status").read_text()
                except (OSError, ValueError):
                    continue
                match = re.search(r"VmRSS:\s+(\d+) kB", status)
                if match:
                    sizes.append(int(match.group(1)))
            if sizes:
                self.largest = max(self.largest, max(sizes))
                self.group = max(self.group, sum(sizes))


def timed(env: Mapping[str, str], *args: str) -> tuple[float, float, str]:
    """Run a labinterp command under /usr/bin/time: (wall seconds, peak RSS MB, stdout)."""
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "maxrss_kb=%M", *labinterp_argv(*args)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=3600,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"labinterp {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    match = re.search(r"maxrss_kb=(\d+)", done.stderr)
    return wall, (int(match.group(1)) / 1024 if match else float("nan")), done.stdout


def job_seconds(url: str, dry_run: bool) -> tuple[float, int]:
    """The newest job's own time (created to finished) and its `changed`."""
    with psycopg.connect(_plain(url)) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM finished_at - created_at), changed, status "
            "FROM reprocessing_jobs WHERE dry_run = %s ORDER BY created_at DESC LIMIT 1",
            (dry_run,),
        ).fetchone()
    if row is None or row[2] != "done":
        raise BenchError(f"the {'dry' if dry_run else 'real'} run did not finish: {row}")
    return float(row[0]), int(row[1])


def queued(url: str) -> int:
    with psycopg.connect(_plain(url)) as conn:
        row = conn.execute("SELECT count(*) FROM panels WHERE status = 'queued'").fetchone()
    return int(row[0]) if row else 0


def nhanes_csv(path: Path, panels: int, seed: int = 7, prefix: str = "IMP") -> None:
    """``panels`` NHANES people resampled, one CSV row per result (API.md's import format)."""
    columns = [
        ("calcium", "calcium_total_mg_dL", "mg/dL"),
        ("potassium", "potassium_mmol_L", "mmol/L"),
        ("sodium", "sodium_mmol_L", "mmol/L"),
        ("phosphate", "phosphorus_mg_dL", "mg/dL"),
        ("albumin", "albumin_g_dL", "g/dL"),
    ]
    (source,) = sorted(NHANES.glob("*.csv"))
    with source.open() as rows:
        people = [
            row for row in csv.DictReader(rows) if any(row[column] for _, column, _ in columns)
        ]
    rng = random.Random(seed)
    with path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            [
                "accession",
                "patient_id",
                "sex",
                "birth_date",
                "collected_at",
                "analyte",
                "value",
                "unit",
                "low",
                "high",
            ]
        )
        for n in range(panels):
            person = rng.choice(people)
            born = 2018 - int(person["age_years"])
            sex = {"F": "female", "M": "male"}[person["sex"]]
            for analyte, column, unit in columns:
                if person[column]:
                    writer.writerow(
                        [
                            f"IMP-{n:08d}",
                            f"IP-{n:08d}",
                            sex,
                            f"{born}-06-15",
                            "2018-03-01T08:30:00Z",
                            analyte,
                            person[column],
                            unit,
                            "",
                            "",
                        ]
                    )


@contextmanager
def worker(env: Mapping[str, str], log: Path) -> Iterator[RssSampler]:
    argv = labinterp_argv("worker", "--concurrency", "2")
    with process("worker", argv, env, log) as proc, RssSampler(proc.popen.pid) as sampler:
        time.sleep(3)  # started and connected before the clock of a job starts
        proc.check_alive()
        yield sampler


# the import is measured up to this size (an import of 10^6 panels takes about 20 minutes here)
IMPORT_MAX = int(os.environ.get("BENCH_IMPORT_MAX", "100000"))


def measure(size: int, folder: Path, redis_url: str) -> Row:
    with scratch_postgres(f"reprocess{size}") as url:
        sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        env = {
            "DATABASE_URL": sa_url,
            "CELERY_BROKER_URL": redis_url,
            "LABINTERP_INSTANCE": str(folder / f"instance-{size}"),
        }
        cli(env, "db", "upgrade")
        started = time.perf_counter()
        if size <= SMOKE_SIZE:  # imported and interpreted by the worker: seconds, not a minute
            csv_path = folder / f"history-{size}.csv"
            nhanes_csv(csv_path, size, prefix="H")
            cli(env, "clinics", "create", BIG)
            cli(env, "import", str(csv_path), "--clinic", BIG)
        else:
            fill(sa_url, size, Mix())
        args = ("reprocess", "--ruleset", RULESET, "--clinic", BIG, "--wait")
        with worker(env, folder / f"worker-{size}.log") as rss:
            wait_until(lambda: queued(sa_url) == 0, 600, "the history interpreted")
            print(f"  {size:,} panels ready in {time.perf_counter() - started:.0f} s", flush=True)
            read, write = measure_floor(sa_url)
            rss.reset()
            timed(env, *args, "--dry-run")
            dry, _ = job_seconds(sa_url, True)
            _, cli_rss, _ = timed(env, *args)
            real, changed = job_seconds(sa_url, False)
            worker_rss, worker_group = rss.largest / 1024, rss.group / 1024
        import_rate, import_rss = float("nan"), float("nan")
        if size <= IMPORT_MAX:
            import_rate, import_rss = timed_import(env, size, folder)
        return Row(
            size,
            read,
            write,
            dry,
            real,
            changed,
            worker_rss,
            worker_group,
            cli_rss,
            import_rate,
            import_rss,
        )


def timed_import(env: Mapping[str, str], size: int, folder: Path) -> tuple[float, float]:
    """Step 5: ``labinterp import`` of a generated CSV of ``size`` panels into a new clinic,
    no worker running: (panels/s, peak RSS MB)."""
    csv_path = folder / f"import-{size}.csv"
    nhanes_csv(csv_path, size)
    cli(env, "clinics", "create", "imported")
    print(f"  importing {size:,} panels ({csv_path.stat().st_size / 1e6:,.0f} MB)", flush=True)
    wall, rss, _ = timed(env, "import", str(csv_path), "--clinic", "imported")
    csv_path.unlink()
    return size / wall, rss


def measure_import(size: int, folder: Path, redis_url: str) -> tuple[float, float]:
    """Step 5 alone on a fresh database."""
    with scratch_postgres(f"import{size}") as url:
        env = {
            "DATABASE_URL": url.replace("postgresql://", "postgresql+psycopg://", 1),
            "CELERY_BROKER_URL": redis_url,
            "LABINTERP_INSTANCE": str(folder / f"instance-import-{size}"),
        }
        cli(env, "db", "upgrade")
        return timed_import(env, size, folder)


def import_only(sizes: list[int]) -> None:
    print(f"bench/reprocess.py, import only: sizes {sizes}; {os.cpu_count()} cores; no worker")
    with work_dir("reprocess") as folder, flushed_redis() as redis_url:
        rows = [(size, *measure_import(size, folder, redis_url)) for size in sizes]
    print()
    print("| panels | import | import peak RSS |")
    print("| ---: | ---: | ---: |")
    for size, rate, rss in rows:
        print(f"| {size:,} | {rate:,.0f} panels/s ({size / rate:,.0f} s) | {rss:.0f} MB |")


def main() -> None:
    smoke = os.environ.get("BENCH_SMOKE", "").strip() not in ("", "0")
    sizes = (
        [SMOKE_SIZE]
        if smoke
        else [int(s) for s in os.environ.get("BENCH_SIZES", "10000,100000").split(",") if s]
    )
    if os.environ.get("BENCH_IMPORT_ONLY", "").strip() not in ("", "0"):
        require_postgres(), require_redis()
        import_only(sizes)
        return
    postgres, redis_version = require_postgres(), require_redis()
    print(
        f"bench/reprocess.py: sizes {sizes}; PostgreSQL {postgres}, Redis {redis_version}; "
        f"{os.cpu_count()} cores; one worker --concurrency 2; chunks of 500 panels"
    )
    rows = []
    with work_dir("reprocess") as folder, flushed_redis() as redis_url:
        for size in sizes:
            rows.append(measure(size, folder, redis_url))
    print()
    print(
        "| panels | floor (COPY read + write) | real run | ratio (goal >= 0.5, done >= 0.15) "
        "| dry run | changed | worker peak RSS (largest / group) | CLI peak RSS "
        "| import | import peak RSS |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r.panels:,} | {r.floor_rate:,.0f}/s ({r.floor_read_s:.2f} s + "
            f"{r.floor_write_s:.2f} s) | {r.real_rate:,.0f}/s ({r.real_s:.1f} s) | "
            f"{r.real_rate / r.floor_rate:.2f} | {r.dry_rate:,.0f}/s | {r.changed:,} | "
            f"{r.worker_rss_mb:.0f} / {r.worker_group_mb:.0f} MB | {r.cli_rss_mb:.0f} MB | "
            + (
                f"{r.import_rate:,.0f} panels/s | {r.import_rss_mb:.0f} MB |"
                if not math.isnan(r.import_rate)
                else f"not run (N > BENCH_IMPORT_MAX={IMPORT_MAX:,}) | - |"
            )
        )


if __name__ == "__main__":
    run_main(main)
