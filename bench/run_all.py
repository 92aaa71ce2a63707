"""Run the end-to-end benchmarks in order and print their figures ready to paste into
bench/RESULTS.md: the machine first, then for each benchmark its command and its table.

    .venv/bin/python bench/run_all.py                      # the issue's parameters (~15 min)
    BENCH_SECONDS=20 BENCH_N=1000 .venv/bin/python bench/run_all.py   # a quicker look

Every BENCH_* variable in the environment reaches every script (see bench/README.md);
BENCH_SCRIPTS picks and orders them (default: ingest_http,latency,worker_throughput).
It does not edit RESULTS.md.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys

import harness as h  # bench/ is on the path: scripts run as `python bench/NAME.py`

SCRIPTS = [
    s.strip()
    for s in os.environ.get("BENCH_SCRIPTS", "ingest_http,latency,worker_throughput").split(",")
    if s.strip()
]


def _first(path: str, key: str) -> str:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def machine() -> list[str]:
    wrk = subprocess.run([h.require_wrk(), "-v"], capture_output=True, text=True)
    commit = subprocess.run(
        ["git", "-C", str(h.REPO), "log", "-1", "--format=%h %s"], capture_output=True, text=True
    )
    mem_kib = _first("/proc/meminfo", "MemTotal").split()[0]
    memory = f"{int(mem_kib) / 1024 / 1024:.1f} GiB" if mem_kib.isdigit() else "?"
    cpu = _first("/proc/cpuinfo", "model name")
    return [
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- code: {commit.stdout.strip()[:100] or '?'}",
        f"- nproc: {os.cpu_count()}; memory: {memory}; CPU: {cpu}",
        f"- kernel: {platform.system()} {platform.release()}; Python {platform.python_version()}",
        f"- PostgreSQL {h.require_postgres()}; Redis {h.require_redis()}; "
        f"{(wrk.stdout or wrk.stderr).splitlines()[0] if (wrk.stdout or wrk.stderr) else 'wrk'}",
        f"- load average when started: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


def main() -> None:
    header = machine()
    print("\n".join(header), flush=True)
    sections = []
    for name in SCRIPTS:
        script = h.BENCH / f"{name}.py"
        if not script.exists():
            raise h.BenchError(f"BENCH_SCRIPTS: no bench/{name}.py")
        shown = " ".join(
            f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("BENCH_")
        )
        command = f"{shown + ' ' if shown else ''}.venv/bin/python bench/{name}.py"
        print(f"\n$ {command}", flush=True)
        out = []
        with subprocess.Popen(
            [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=h.REPO
        ) as proc:
            assert proc.stdout is not None
            try:
                for line in proc.stdout:
                    print(line, end="", flush=True)
                    out.append(line.rstrip("\n"))
            except BaseException:  # Ctrl-C or SIGTERM: the script cleans up after itself
                proc.terminate()
                proc.wait()
                raise
        status = proc.returncode
        # the tables, the parameters, and every warning with the log lines it quotes
        keep = [x for x in out if x.startswith(("|", "parameters:", "  !", "      "))]
        if status:
            keep.append(f"(exited with status {status}: see the output above)")
        sections.append((name, command, keep))
    print("\n\n----- ready to paste -----\n")
    print("\n".join(header))
    for name, command, lines in sections:
        print(f"\n### {name}\n\n```\n{command}\n```\n")
        print("\n".join(lines))


if __name__ == "__main__":
    h.run_main(main)
