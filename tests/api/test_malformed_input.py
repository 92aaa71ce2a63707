"""No request, however malformed, gets a 500: every field of API.md's panel replaced by junk.

Each mutated body answers 422 with an `errors` entry naming a field (or, for junk the schema
tolerates such as an unknown extra field, is accepted), and a panel accepted earlier stays
readable and unchanged afterwards.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from tests.api.conftest import auth, sample_panel

PANELS = "/api/v1/panels"

JUNK: list[Any] = [
    None,
    [],
    {},
    "",
    "x",
    "9" * 400,
    True,
    -1,
    0,
    1e308,
    12345678901234567890123456789,
    {"nested": [1, {"deeper": None}]},
    ["a", 1, None],
    "\u0000\ud7ff\U0001f600",
]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return copy.deepcopy(value)
    out = copy.deepcopy(document)
    node = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = copy.deepcopy(value)
    return out


def test_every_field_replaced_by_junk_is_a_clear_error_never_a_500(client, tokens, work):
    kept = client.post(PANELS, json=sample_panel(accession="KEEP"), headers=auth(tokens.clinic))
    assert kept.status_code == 202
    before = client.get(kept.headers["Location"], headers=auth(tokens.clinic)).get_json()

    base = sample_panel()
    statuses: dict[int, int] = {}
    accepted: list[str] = []
    for n, path in enumerate(_paths(base)):
        for m, junk in enumerate(JUNK):
            body = _replaced(base, path, junk)
            if isinstance(body, dict) and path[:1] != ("accession",):
                body["accession"] = f"J-{n}-{m}"  # each a new accession: no 409 by accident
            response = client.post(
                PANELS,
                data=json.dumps(body),
                content_type="application/json",
                headers=auth(tokens.clinic),
            )
            where = f"{'.'.join(map(str, path)) or 'body'} = {junk!r:.40}"
            assert response.status_code in (200, 202, 409, 422), (where, response.status_code)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 202:
                accepted.append(response.get_json()["id"])
            if response.status_code == 422:
                problem = response.get_json()
                assert response.mimetype == "application/problem+json", where
                assert problem["errors"] and all(
                    isinstance(k, str) and v for k, v in problem["errors"].items()
                ), where
    assert statuses.get(422, 0) > 100  # most junk is refused, not silently stored

    # what was accepted (junk the contract tolerates) is interpreted, not crashed on
    work(*accepted)
    for panel_id in accepted:
        panel = client.get(f"{PANELS}/{panel_id}", headers=auth(tokens.clinic)).get_json()
        assert panel["status"] == "interpreted", (panel_id, panel["failure"])

    after = client.get(kept.headers["Location"], headers=auth(tokens.clinic)).get_json()
    assert after == before


def test_junk_in_query_strings_and_paths_is_never_a_500(client, tokens, posted):
    urls = [
        f"{PANELS}?page=0",
        f"{PANELS}?page=-1&per_page=abc",
        f"{PANELS}?per_page=100000",
        f"{PANELS}?collected_from=yesterday",
        f"{PANELS}?status=exploded",
        f"{PANELS}?flag=%00",
        f"{PANELS}/not-a-uuid",
        f"{PANELS}/{posted['id']}?revision=abc",
        f"{PANELS}/{posted['id']}?revision=99",
        f"{PANELS}/{posted['id']}/interpretations?page=x",
        "/api/v1/patients/P-0042/trend",
        "/api/v1/patients/P-0042/trend?analyte=unobtainium",
        "/api/v1/patients/%FF/trend?analyte=magnesium",
    ]
    for url in urls:
        response = client.get(url, headers=auth(tokens.clinic))
        assert response.status_code in (200, 404, 422), (url, response.status_code)
        if response.status_code >= 400:
            assert response.mimetype == "application/problem+json", url
