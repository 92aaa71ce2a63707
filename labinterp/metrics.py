"""Prometheus metrics, from ``prometheus_client``.

Under gunicorn (several API processes) and Celery's prefork pool (several worker processes),
each process writes its samples to files in ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics``
adds them up (prometheus_client's multiprocess mode). `labinterp serve` and `labinterp worker`
set that folder (``<instance>/metrics``) before this module is first imported: the value
class is chosen at import. Without it (tests, a single process) the default registry is used.

Nothing here reads the database on a scrape but two index range scans (panels queued, and
the oldest of them) done by the caller: no full-table counts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "labinterp_http_requests",
    "HTTP requests answered, by route (the URL rule, never a path with ids) and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "labinterp_http_request_duration_seconds",
    "Time to answer an HTTP request, by route.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
PANELS_ACCEPTED = Counter(
    "labinterp_panels_accepted",
    "Panels stored durably and queued: new accessions and corrections (revisions).",
    ["kind"],
)
INTERPRETATIONS = Counter(
    "labinterp_interpretations",
    "Interpretations stored, by their status and priority.",
    ["status", "priority"],
)
FINDINGS = Counter(
    "labinterp_findings",
    "Findings in stored interpretations, by finding code.",
    ["code"],
)
FAILURES = Counter(
    "labinterp_interpretation_failures",
    "Panels that ended `failed`, by failure code.",
    ["code"],
)
INTERPRETATION_LATENCY = Histogram(
    "labinterp_interpretation_latency_seconds",
    "From a revision's acceptance (its 202) to its interpretation being stored.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
TASK_DURATION = Histogram(
    "labinterp_task_duration_seconds",
    "Time a worker spent on one message, by task.",
    ["task"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0),
)
PUBLISH_FAILURES = Counter(
    "labinterp_broker_publish_failures",
    "Attempts to hand interpretation tasks to the broker that failed (retried later).",
)
ALERT_DELIVERIES = Counter(
    "labinterp_alert_deliveries",
    "Tries at POSTing a critical-value alert to a clinic's webhook, by outcome: delivered, "
    "retrying (to be tried again), gave_up.",
    ["outcome"],
)


def record_interpretations(bodies: Sequence[dict[str, Any]], latencies: Iterable[float]) -> None:
    for body in bodies:
        INTERPRETATIONS.labels(str(body["status"]), str(body["priority"])).inc()
        for finding in body.get("findings", []):
            FINDINGS.labels(str(finding["code"])).inc()
    for seconds in latencies:
        INTERPRETATION_LATENCY.observe(max(0.0, seconds))


def record_failures(codes: Iterable[str]) -> None:
    for code in codes:
        FAILURES.labels(str(code)).inc()


class QueueCollector(Collector):
    """The queue as the database sees it at scrape time: how many panels are `queued`, and
    how long the oldest has waited."""

    def __init__(self, queued: int, oldest_age_seconds: float) -> None:
        self.queued = queued
        self.oldest_age_seconds = oldest_age_seconds

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "labinterp_panels_queued", "Panels waiting for their interpretation.", self.queued
        )
        yield GaugeMetricFamily(
            "labinterp_oldest_queued_panel_age_seconds",
            "How long the oldest panel still `queued` has waited since it was accepted "
            "(0 when none waits).",
            self.oldest_age_seconds,
        )


def exposition(queue: QueueCollector) -> tuple[bytes, str]:
    """The text a scrape gets: every process's samples (multiprocess mode) or this process's,
    then the queue gauges."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    extra = CollectorRegistry()
    extra.register(queue)
    return text + generate_latest(extra), CONTENT_TYPE_LATEST


def process_exited(pid: int) -> None:
    """Forget the live gauges of a process that exited (multiprocess mode only)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)
