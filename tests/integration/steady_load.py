"""A steady stream of panels against a running `labinterp serve`, each followed from its 202
until GET /api/v1/panels/{id} says `interpreted` (tests/integration and bench/ share it)."""

from __future__ import annotations

import copy
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from labinterp.demo import SAMPLE_PANELS
from tests.integration.worker_process import http_json


@dataclass
class FollowedPanel:
    number: int
    id: str
    accepted: float  # time.monotonic() when the 202 arrived
    interpreted: float | None = None  # time.monotonic() when it was first seen interpreted

    @property
    def latency(self) -> float | None:
        """Seconds from the 202 to `interpreted`; None if it never was."""
        return None if self.interpreted is None else self.interpreted - self.accepted


@dataclass
class SteadyLoad:
    panels: list[FollowedPanel] = field(default_factory=list)
    refused: int = 0  # POSTs tried again because the API was not listening yet
    error: BaseException | None = None  # what stopped the follower thread, if anything

    def slower_than(self, seconds: float) -> list[FollowedPanel]:
        late = [p for p in self.panels if p.latency is None or p.latency > seconds]
        return sorted(late, key=lambda p: p.number)

    @property
    def slowest(self) -> float | None:
        latencies = [p.latency for p in self.panels]
        if not latencies or None in latencies:
            return None
        return max(p for p in latencies if p is not None)


def run_steady_load(
    base: str, token: str, *, rate: float, seconds: float, give_up_after: float, tag: str
) -> SteadyLoad:
    """Post ``rate`` panels a second for ``seconds`` (each at its own slot of a fixed schedule,
    tried again while the API is not listening yet), and follow each one until it is
    interpreted or ``give_up_after`` seconds after the last was posted."""
    load = SteadyLoad()
    done = threading.Event()
    follower = threading.Thread(target=_follow, args=(base, token, load, done, give_up_after))
    follower.start()
    try:
        _post_steadily(base, token, load, rate, seconds, tag)
    finally:
        done.set()
        follower.join()
    if load.error is not None:
        raise load.error
    return load


def _post_steadily(
    base: str, token: str, load: SteadyLoad, rate: float, seconds: float, tag: str
) -> None:
    template = json.loads(json.dumps(SAMPLE_PANELS[0], default=str))
    lock = threading.Lock()
    begin = time.monotonic()

    def post(n: int) -> None:
        time.sleep(max(0.0, begin + n / rate - time.monotonic()))
        panel = copy.deepcopy(template)
        panel["accession"] = f"STEADY-{tag}-{n:05d}"
        while True:
            try:
                status, document = http_json("POST", f"{base}/api/v1/panels", token, panel)
                break
            except OSError:  # not listening yet
                with lock:
                    load.refused += 1
                time.sleep(0.05)
        assert status == 202, (status, document)
        with lock:
            load.panels.append(FollowedPanel(n, document["id"], time.monotonic()))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, range(int(rate * seconds))))


def _follow(
    base: str, token: str, load: SteadyLoad, done: threading.Event, give_up_after: float
) -> None:
    def check(panel: FollowedPanel) -> None:
        try:
            document = http_json("GET", f"{base}/api/v1/panels/{panel.id}", token)[1]
        except OSError:
            return
        if document["status"] == "interpreted":
            panel.interpreted = time.monotonic()
        elif document["status"] != "queued":
            raise AssertionError(f"panel {panel.number} ({panel.id}) is {document['status']}")

    deadline: float | None = None
    try:
        with ThreadPoolExecutor(4) as pool:
            while True:
                waiting = [p for p in list(load.panels) if p.interpreted is None]
                if done.is_set():
                    deadline = deadline or time.monotonic() + give_up_after
                    if not waiting or time.monotonic() > deadline:
                        return
                list(pool.map(check, waiting))
                time.sleep(0.02)
    except BaseException as exc:  # handed to the caller's thread
        load.error = exc
