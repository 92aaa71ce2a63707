"""/metrics under `labinterp serve`: the samples of every API process (gunicorn runs two) and
of the worker process add up, as Prometheus scrapes them."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import sample_panel
from tests.integration.worker_process import (
    free_port,
    http_json,
    labinterp_cli,
    labinterp_process,
    wait_until,
)

pytestmark = pytest.mark.worker

PANELS = 12


def _scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _up(base: str) -> bool:
    try:
        return http_json("GET", f"{base}/healthz")[0] == 200
    except OSError:
        return False


def test_metrics_add_up_every_api_process_and_the_worker(tmp_path: Path) -> None:
    env = {"LABINTERP_INSTANCE": str(tmp_path / "i"), "DATABASE_URL": "", "CELERY_BROKER_URL": ""}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with labinterp_process(["serve", "--port", str(port)], env, tmp_path / "serve.log"):
        wait_until(lambda: _up(base), 60, 0.2, "serve to answer")
        labinterp_cli(env, "clinics", "create", "m")
        token = labinterp_cli(env, "tokens", "create", "--role", "clinic", "--clinic", "m")
        token = token.strip().splitlines()[-1]
        ids = []
        for n in range(PANELS):  # a new connection each: both API processes answer some
            status, body = http_json(
                "POST", f"{base}/api/v1/panels", token, sample_panel(accession=f"M-{n}")
            )
            assert status == 202
            ids.append(body["id"])

        def interpreted() -> bool:
            return all(
                http_json("GET", f"{base}/api/v1/panels/{i}", token)[1]["status"] == "interpreted"
                for i in ids
            )

        wait_until(interpreted, 60, 0.2, "every panel interpreted")
        samples = _scrape(base)
        workers = sorted(Path(env["LABINTERP_INSTANCE"], "metrics").glob("*.db"))
    print(f"{len(workers)} sample files of the API and worker processes")
    route = (("method", "POST"), ("route", "/api/v1/panels"), ("status", "202"))
    assert samples[("labinterp_http_requests_total", route)] == PANELS
    assert samples[("labinterp_panels_accepted_total", (("kind", "new"),))] == PANELS
    interpretations = sum(
        v for (name, _), v in samples.items() if name == "labinterp_interpretations_total"
    )
    assert interpretations == PANELS  # counted in the worker process, shown by the API
    assert samples[("labinterp_findings_total", (("code", "hypomagnesemia"),))] == PANELS
    assert samples[("labinterp_interpretation_latency_seconds_count", ())] == PANELS
    assert samples[("labinterp_panels_queued", ())] == 0
