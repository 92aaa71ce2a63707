"""The embedded default: `labinterp serve` alone runs API + worker on SQLite and a folder broker."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.api.conftest import sample_panel
from tests.integration.steady_load import run_steady_load
from tests.integration.worker_process import (
    REPO,
    free_port,
    http_json,
    labinterp_cli,
    labinterp_process,
    wait_until,
)

pytestmark = pytest.mark.worker


def _env(instance: Path) -> dict[str, str]:
    # empty values mean "use the default": SQLite under the instance folder, filesystem broker
    return {"LABINTERP_INSTANCE": str(instance), "DATABASE_URL": "", "CELERY_BROKER_URL": ""}


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_serve_alone_interprets_a_posted_panel_and_demo_shows_what_was_flagged(tmp_path):
    env = _env(tmp_path / "instance")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with labinterp_process(["serve", "--port", str(port)], env, tmp_path / "serve.log"):
        wait_until(lambda: _healthy(base), 60, 0.2, "serve to be ready")
        labinterp_cli(env, "clinics", "create", "embedded")
        token = (
            labinterp_cli(env, "tokens", "create", "--role", "clinic", "--clinic", "embedded")
            .strip()
            .splitlines()[-1]
        )

        status, body = http_json("POST", f"{base}/api/v1/panels", token, sample_panel())
        assert status == 202 and body["status"] == "queued"
        started = time.monotonic()
        document = wait_until(
            lambda: (
                (d := http_json("GET", f"{base}/api/v1/panels/{body['id']}", token)[1])["status"]
                != "queued"
                and d
            ),
            30,
            0.02,
            "the panel to be interpreted",
        )
        print(f"embedded default: interpreted {time.monotonic() - started:.3f} s after the 202")
        assert document["status"] == "interpreted"
        assert "hypomagnesemia" in [f["code"] for f in document["interpretation"]["findings"]]

        demo = subprocess.run(
            [sys.executable, "-m", "labinterp", "demo", "--url", base, "--token", token],
            cwd=REPO,
            env={**__import__("os").environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "hypomagnesemia" in demo.stdout and "hyperkalemia" in demo.stdout
        assert "DEMO-0003" in demo.stdout and "normal" in demo.stdout
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log, log[-4000:]


# seconds from a 202 to `interpreted` for a panel posted while the worker is still starting
# (2-5 s here, ≈ 10 s on a busy shared machine); a lost message waits for the sweeper instead
PROMPTLY = 15.0


def test_serve_loaded_from_its_first_second_interprets_every_panel_promptly(tmp_path):
    """20 panels/s from serve's first second, while its worker is still starting (issue 5:
    one panel in such a run waited 80 s for the sweeper): every panel is interpreted within
    seconds, none is lost (the sweeper is pushed out of reach, so a lost one stays queued),
    and the worker never stops."""
    env = {
        **_env(tmp_path / "instance"),
        "LABINTERP_RATE_LIMIT": "0",  # 20 a second is over one token's default limit
        "LABINTERP_SWEEP_AFTER": "3600",
    }
    labinterp_cli(env, "clinics", "create", "first-second")
    token = (
        labinterp_cli(env, "tokens", "create", "--role", "clinic", "--clinic", "first-second")
        .strip()
        .splitlines()[-1]
    )
    port = free_port()
    log = tmp_path / "serve.log"
    with labinterp_process(["serve", "--port", str(port)], env, log):
        time.sleep(1)
        load = run_steady_load(
            f"http://127.0.0.1:{port}", token, rate=20, seconds=10, give_up_after=30, tag="t"
        )
    late = load.slower_than(PROMPTLY)
    slowest = "never" if load.slowest is None else f"{load.slowest:.2f} s"
    print(
        f"{len(load.panels)} panels posted from serve's first second "
        f"({load.refused} POSTs before it listened): slowest 202 -> interpreted {slowest}"
    )
    assert not late, [(p.number, p.id, p.latency) for p in late]
    text = log.read_text()
    assert "Traceback" not in text and "exited after" not in text, text[-4000:]


def _worker_pids(log: Path) -> list[int]:
    return [int(pid) for pid in re.findall(r"started worker process (\d+)", log.read_text())]


def _children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def _processes_of(instance: Path) -> list[int]:
    """Processes started with LABINTERP_INSTANCE=instance (serve, its worker, the beat)."""
    entry = f"LABINTERP_INSTANCE={instance}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                environ = (proc / "environ").read_bytes()
            except OSError:
                continue
            if entry in environ.split(b"\0"):
                found.append(int(proc.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux's /proc")
def test_serve_starts_another_worker_when_its_worker_dies(tmp_path):
    """A worker killed under `serve` (the OOM killer, a crash) is replaced, and a panel
    posted meanwhile is interpreted; an API process that gunicorn replaces leaves the worker
    alone; when serve stops, nothing it started is left running (the killed worker's beat
    process included)."""
    instance = tmp_path / "instance"
    env = _env(instance)
    log = tmp_path / "serve.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with labinterp_process(["serve", "--port", str(port)], env, log) as serve:
        wait_until(lambda: _healthy(base), 60, 0.2, "serve to be ready")
        labinterp_cli(env, "clinics", "create", "crash")
        token = (
            labinterp_cli(env, "tokens", "create", "--role", "clinic", "--clinic", "crash")
            .strip()
            .splitlines()[-1]
        )
        first = wait_until(lambda: _worker_pids(log), 30, 0.1, "the worker to start")[0]
        wait_until(lambda: "@" in log.read_text() and " ready." in log.read_text(), 30)

        # an API process that exits unwinds through serve's code (gunicorn forked it there)
        api = next(pid for pid in _children(serve.pid) if pid != first)
        os.kill(api, signal.SIGTERM)
        wait_until(lambda: api not in _children(serve.pid), 20, 0.1, "the API process to exit")
        time.sleep(1)
        assert _worker_pids(log) == [first] and Path(f"/proc/{first}").exists()

        os.kill(first, signal.SIGKILL)

        status, body = http_json("POST", f"{base}/api/v1/panels", token, sample_panel())
        assert status == 202
        wait_until(lambda: len(_worker_pids(log)) > 1, 30, 0.1, "another worker to start")
        document = wait_until(
            lambda: (
                (d := http_json("GET", f"{base}/api/v1/panels/{body['id']}", token)[1])["status"]
                != "queued"
                and d
            ),
            60,
            0.1,
            "the panel to be interpreted by the new worker",
        )
        assert document["status"] == "interpreted"
    wait_until(lambda: not _processes_of(instance), 20, 0.2, "every process of serve to end")


def test_each_serve_keeps_its_gunicorn_control_socket_in_its_instance(tmp_path):
    """gunicorn's control socket is per instance, not one per user ($HOME/.gunicorn), which a
    second `labinterp serve` on the machine took over and removed when it stopped."""
    gunicorn_config = pytest.importorskip("gunicorn.config")
    if not hasattr(gunicorn_config, "ControlSocket"):
        pytest.skip("this gunicorn has no control socket (before 25.1)")
    home = tmp_path / "home"
    home.mkdir()
    instance = tmp_path / "i"
    env = {**_env(instance), "HOME": str(home), "XDG_RUNTIME_DIR": ""}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with labinterp_process(["serve", "--port", str(port), "--no-worker"], env, tmp_path / "s.log"):
        wait_until(lambda: _healthy(base), 60, 0.2, "serve to be ready")
        wait_until(lambda: (instance / "gunicorn.ctl").exists(), 10, 0.1, "the control socket")
        assert not (home / ".gunicorn" / "gunicorn.ctl").exists()


def test_demo_with_a_token_from_another_database_says_so(tmp_path):
    """`labinterp demo` without --token makes a token in the database it is configured for;
    when the service uses another one the 401 comes with what to do about it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    served = _env(tmp_path / "served")
    with labinterp_process(
        ["serve", "--port", str(port), "--no-worker"], served, tmp_path / "serve.log"
    ):
        wait_until(lambda: _healthy(base), 60, 0.2, "serve to be ready")
        demo = subprocess.run(
            [sys.executable, "-m", "labinterp", "demo", "--url", base],
            cwd=REPO,
            env={**os.environ, **_env(tmp_path / "elsewhere")},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert demo.returncode == 1
    assert "answered 401" in demo.stderr and "pass --token" in demo.stderr, demo.stderr


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux's /proc")
def test_the_worker_of_a_killed_serve_stops_by_itself(tmp_path):
    """`serve` killed outright (SIGKILL: no chance to stop its worker) leaves no worker
    consuming the embedded broker beside the one the next `serve` starts."""
    instance = tmp_path / "instance"
    env = _env(instance)
    log = tmp_path / "serve.log"
    port = free_port()
    with labinterp_process(["serve", "--port", str(port)], env, log) as serve:
        wait_until(lambda: _healthy(f"http://127.0.0.1:{port}"), 60, 0.2, "serve to be ready")
        worker = wait_until(lambda: _worker_pids(log), 30, 0.1, "the worker to start")[0]
        wait_until(lambda: " ready." in log.read_text(), 30, 0.1, "the worker to be ready")
        os.kill(serve.pid, signal.SIGKILL)
        serve.wait()
        wait_until(
            lambda: not Path(f"/proc/{worker}").exists() or _zombie(worker),
            30,
            0.2,
            "the orphaned worker to stop",
        )
        assert "is gone; stopping this worker" in log.read_text()
    for pid in _processes_of(
        instance
    ):  # the API processes gunicorn left (killed with serve's group)
        os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True
