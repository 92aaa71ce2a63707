"""API.md's own examples, read from ../shared/API.md: its panel, posted as written, answers
with the interpretation API.md shows (every entry and field it shows, "…" standing for text
that goes on)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from labinterp.jsontext import loads
from tests.api.conftest import auth

API_MD = Path(__file__).resolve().parents[2].parent / "shared" / "API.md"


def _json_blocks() -> list[Any]:
    if not API_MD.is_file():
        pytest.skip(f"no {API_MD} (the specification lives beside the repository)")
    return [loads(b) for b in re.findall(r"```json\n(.*?)```", API_MD.read_text(), re.S)]


# Text written for people: API.md's wording is an illustration, ours may say more; it must be
# there and not empty, and where API.md shows the start of it ("… goes on") start the same way.
PROSE = {"explanation", "source", "detail", "reason", "summary"}


def _matches(shown: Any, actual: Any, where: str) -> list[str]:
    """Where ``actual`` differs from what API.md shows; extra fields in ``actual`` are fine."""
    if where.rsplit(".", 1)[-1] in PROSE and "…" not in shown:
        ok = isinstance(actual, str) and actual.strip() != ""
        return [] if ok else [f"{where}: {actual!r} is not a text"]
    if isinstance(shown, str) and "…" in shown:
        prefix = shown.split("…")[0].rstrip()
        ok = isinstance(actual, str) and actual.startswith(prefix)
        return [] if ok else [f"{where}: {actual!r} does not start with {prefix!r}"]
    if isinstance(shown, dict):
        if not isinstance(actual, dict):
            return [f"{where}: {actual!r} is not an object"]
        out = []
        for key, value in shown.items():
            if key not in actual:
                out.append(f"{where}.{key}: missing")
            else:
                out += _matches(value, actual[key], f"{where}.{key}")
        return out
    if isinstance(shown, list):
        if not isinstance(actual, list):
            return [f"{where}: {actual!r} is not a list"]
        out = []
        for n, item in enumerate(shown):
            if isinstance(item, dict):  # an entry of a list: the actual entry with its code
                key = "code" if "code" in item else "analyte"
                found = [a for a in actual if isinstance(a, dict) and a.get(key) == item[key]]
                if not found:
                    out.append(f"{where}[{n}]: no entry with {key} {item[key]!r}")
                else:
                    out += _matches(item, found[0], f"{where}[{item[key]}]")
            elif item not in actual:
                out.append(f"{where}: {item!r} not in {actual!r}")
        return out
    return [] if shown == actual else [f"{where}: {actual!r}, API.md shows {shown!r}"]


def test_api_md_panel_posted_as_written_gets_api_md_interpretation(client, tokens, work):
    blocks = _json_blocks()
    panel = next(b for b in blocks if isinstance(b, dict) and "accession" in b)
    shown = next(b for b in blocks if isinstance(b, dict) and "findings" in b)

    response = client.post("/api/v1/panels", json=panel, headers=auth(tokens.clinic))
    assert response.status_code == 202, response.get_json()
    assert response.headers["Location"] == f"/api/v1/panels/{response.get_json()['id']}"
    assert response.get_json()["status"] == "queued"
    work(response.get_json()["id"])
    document = client.get(response.headers["Location"], headers=auth(tokens.clinic)).get_json()
    assert document["status"] == "interpreted"

    # "one entry of each kind, not the whole answer for the panel above": the notes entry
    # (a LOINC/unit mismatch) belongs to another panel
    shown = {k: v for k, v in shown.items() if k != "notes"}
    problems = _matches(shown, document["interpretation"], "interpretation")
    assert problems == [], "\n".join(problems)

    again = client.post("/api/v1/panels", json=panel, headers=auth(tokens.clinic))
    assert again.status_code == 200 and again.get_json()["id"] == response.get_json()["id"]


def test_the_readme_curl_example_posts_api_md_panel():
    panel = next(b for b in _json_blocks() if isinstance(b, dict) and "accession" in b)
    sample = Path(__file__).resolve().parents[2] / "scripts" / "sample-panel.json"
    assert loads(sample.read_text()) == panel
