"""Shared pytest setup: an isolated environment, and a clear word on service-backed tests.

App and database fixtures live beside the tests that use them (tests/api/conftest.py,
tests/integration/).
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterator

import pytest

# tests that need a real PostgreSQL, Redis or worker process (markers in pyproject.toml)
SERVICE_MARKERS = frozenset({"postgres", "redis", "worker"})
_skipped_service_tests: dict[str, str] = {}  # nodeid -> skip reason


def _in_ci() -> bool:
    return os.environ.get("CI") == "true"


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests never write ./instance, nor reach the database or broker a developer exported."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LABINTERP_INSTANCE", str(tmp_path_factory.mktemp("instance")))
        for name in ("DATABASE_URL", "CELERY_BROKER_URL"):
            patch.delenv(name, raising=False)
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not (report.skipped and SERVICE_MARKERS & {m.name for m in item.iter_markers()}):
        return
    if hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if _in_ci():  # CI has the services: a service-backed test that did not run is a failure
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where PostgreSQL and Redis must run: {reason}"
    else:
        _skipped_service_tests[item.nodeid] = reason


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return " ".join(text.removeprefix("Skipped: ").split())  # one line, even for psycopg's errors


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # outermost: runs after pytest's short summary
def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter,
) -> Generator[None, None, None]:
    yield
    if not _skipped_service_tests:
        return
    # "Redis not reachable at URL" without the exception: the SKIPPED lines above have it
    short = [
        re.sub(r"^(.*? not reachable at \S+) .*$", r"\1", reason)
        for reason in _skipped_service_tests.values()
    ]
    reasons = "; ".join(dict.fromkeys(short))
    count = len(_skipped_service_tests)
    terminalreporter.write_line(
        f"{count} PostgreSQL/Redis test{'s' if count != 1 else ''} skipped: {reasons}; "
        "run .ci/run or start the services",
        yellow=True,
        bold=True,
    )
