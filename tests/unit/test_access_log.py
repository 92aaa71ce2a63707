"""The access log of `labinterp serve` carries no patient data: no query string, no Referer,
no header, and ``{id}`` where a path has a patient's id."""

from __future__ import annotations

import datetime as dt
import io
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

from labinterp.accesslog import ACCESS_LOG_FORMAT, SAFE_ATOMS, AccessLogger, redact_path

PATIENT = "PHI-4f1c/77 Smith"  # a clinic's own id: any text, slashes and spaces included


def _request(path: str, query: str = "") -> tuple[Any, Any, dict[str, str]]:
    """(response, request, environ) of one GET of ``path?query``, as gunicorn passes them."""
    raw = path + (f"?{query}" if query else "")
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": raw,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "192.0.2.1",
        "HTTP_REFERER": f"https://clinic.example/chart?patient={PATIENT}",
        "HTTP_USER_AGENT": "curl/8",
    }
    request = SimpleNamespace(
        headers=[("AUTHORIZATION", "Bearer li_secret"), ("X-PATIENT", PATIENT)]
    )
    response = SimpleNamespace(
        status="200 OK", sent=512, headers=[("Location", f"/api/v1/patients/{PATIENT}")]
    )
    return response, request, environ


def _config(fmt: str = ACCESS_LOG_FORMAT) -> Config:
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", fmt)
    return cfg


def _line(path: str, query: str = "", fmt: str = ACCESS_LOG_FORMAT) -> str:
    """What gunicorn's access log writes for one GET of ``path?query``."""
    logger = AccessLogger(_config(fmt))
    out = io.StringIO()
    for handler in list(logger.access_log.handlers):
        logger.access_log.removeHandler(handler)
    logger.access_log.addHandler(logging.StreamHandler(out))
    logger.access(*_request(path, query), dt.timedelta(milliseconds=42))
    return out.getvalue().strip()


@pytest.mark.parametrize("took", [dt.timedelta(0), dt.timedelta(seconds=3, microseconds=7_654)])
@pytest.mark.parametrize("sent", [None, 0, 512])
def test_each_safe_atom_is_what_gunicorn_itself_logs(took: dt.timedelta, sent: int | None) -> None:
    """The atoms are computed here, not taken from gunicorn's (which hold every header):
    each must still mean what gunicorn's documentation says it means."""
    response, request, environ = _request("/api/v1/panels", "x=1")
    response.sent = sent
    ours = AccessLogger(_config()).atoms(response, request, environ, took)
    theirs = Logger(_config()).atoms(response, request, environ, took)
    for atom in SAFE_ATOMS:
        if atom != "t":  # the time of day: gunicorn's own now(), called twice
            assert ours[atom] == theirs[atom], atom
    assert ours["t"][0] == "[" and ours["t"][-1] == "]"
    assert set(ours) == {*SAFE_ATOMS, "U", "r"}


def test_a_line_has_method_path_status_size_and_duration_only() -> None:
    line = _line("/api/v1/panels", f"patient_id={PATIENT}&accession=LAB-1")
    assert '"GET /api/v1/panels HTTP/1.1" 200 512 42ms' in line
    assert line.startswith("192.0.2.1 [")
    for leak in ("patient_id", "PHI-4f1c", "LAB-1", "?", "clinic.example", "curl", "li_secret"):
        assert leak not in line, (leak, line)


def test_a_patient_path_is_logged_with_id_in_its_place() -> None:
    line = _line(f"/api/v1/patients/{PATIENT}/trend", "analyte=magnesium")
    assert '"GET /api/v1/patients/{id}/trend HTTP/1.1"' in line
    assert "PHI-4f1c" not in line and "Smith" not in line and "magnesium" not in line


@pytest.mark.parametrize(
    "fmt",
    [
        "%(r)s %(q)s %(f)s %(a)s %(u)s",
        "%({authorization}i)s %({x-patient}i)s %({location}o)s %({query_string}e)s",
    ],
)
def test_no_format_an_operator_chooses_can_bring_the_query_or_headers_back(fmt: str) -> None:
    line = _line(f"/api/v1/patients/{PATIENT}/trend", f"patient_id={PATIENT}")
    for leak in ("PHI-4f1c", "Smith", "li_secret", "patient_id", "clinic.example"):
        assert leak not in line, (leak, line)


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/api/v1/patients/P-1/trend", "/api/v1/patients/{id}/trend"),
        ("/api/v1/patients/a/b/c/trend", "/api/v1/patients/{id}/trend"),
        ("/api/v1/patients/P-1", "/api/v1/patients/{id}"),  # no such route: a 404, still hidden
        ("/api/v1/patients/P-1/trend/x", "/api/v1/patients/{id}"),
        ("/api/v1/panels/6a1f0c52-0d5e-4d3a-9f55-3d3b1e1f2a10", None),  # a panel id stays
    ],
)
def test_redact_path(path: str, shown: str | None) -> None:
    assert redact_path(path) == (shown or path)


def test_every_route_with_a_patient_in_its_path_is_redacted(tmp_path: Path) -> None:
    """Walks the app's routes: a new route whose path names a patient fails here until its
    pattern is added to labinterp/accesslog.py."""
    from labinterp.app import create_app
    from labinterp.config import load_settings
    from labinterp.runtime import build_runtime

    settings = load_settings({"LABINTERP_INSTANCE": str(tmp_path)})
    app = create_app(runtime=build_runtime(settings))
    checked = []
    for rule in app.url_map.iter_rules():
        patient_variables = [name for name in rule.arguments if "patient" in name.lower()]
        if not patient_variables and "patient" not in rule.rule.lower():
            continue
        values = {name: PATIENT if name in patient_variables else "x" for name in rule.arguments}
        path = rule.build(values, append_unknown=False)[1]  # type: ignore[index]
        shown = redact_path(unquote(path))
        assert "PHI-4f1c" not in shown and "Smith" not in shown, (rule.rule, shown)
        checked.append(rule.rule)
    assert checked, "no route with a patient in its path: the walk found nothing to check"
