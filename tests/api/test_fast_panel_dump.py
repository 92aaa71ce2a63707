"""The answer to a new panel is written out field by field (schemas.output.dump_new_panel),
not dumped by marshmallow: it must be exactly what ``PanelOut`` dumps, key order included,
for every shape a new panel can take."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from labinterp import jsontext
from labinterp.demo import SAMPLE_PANELS
from labinterp.runtime import Runtime
from labinterp.schemas.output import PanelOut, dump_new_panel
from labinterp.schemas.panels import PanelIn
from labinterp.services import panels as panel_service
from labinterp.services.accounts import resolve_token
from tests.api.conftest import Tokens, auth


def _variants() -> list[dict[str, Any]]:
    out = [copy.deepcopy(panel) for panel in SAMPLE_PANELS]
    bare = copy.deepcopy(SAMPLE_PANELS[0])
    bare.pop("context", None)
    bare.pop("specimen", None)
    bare["patient"] = {"id": "P-bare"}  # no sex, no birth date
    out.append(bare)
    still = copy.deepcopy(SAMPLE_PANELS[0])
    still["context"] = {"symptoms": ["cramps"], "notes": None}  # no twitching
    still["results"][0]["reference_range"] = {"text": "see report"}
    out.append(still)
    offset = copy.deepcopy(SAMPLE_PANELS[0])
    offset["collected_at"] = "2026-11-20T08:30:00.123456+05:30"
    offset["results"][0]["reference_range"] = {"low": 0.70, "high": 1}
    out.append(offset)
    for n, panel in enumerate(out):
        panel["accession"] = f"FAST-{n}"
    return out


@pytest.mark.parametrize("body", _variants(), ids=lambda b: b["accession"])
def test_a_new_panel_is_answered_exactly_as_panelout_dumps_it(
    runtime: Runtime, tokens: Tokens, body: dict[str, Any]
) -> None:
    with runtime.session_factory() as session:
        actor = resolve_token(session, tokens.clinic)
    clinic_id = actor.single_clinic
    assert clinic_id is not None
    result = panel_service.submit_panel(
        runtime.engine,
        actor,
        panel_service.ClinicRef(clinic_id, actor.clinic_names[clinic_id]),
        PanelIn().load(body),
        runtime.rulesets[runtime.settings.default_ruleset],
        dt.datetime.now(dt.UTC),
    )
    assert result.created and result.document is not None
    fast = dump_new_panel(result.document)
    assert fast is not None
    # the same text: the same keys in the same order, the same values of the same types
    assert jsontext.dumps(fast) == jsontext.dumps(PanelOut().dump(result.document))


def test_the_answer_to_a_post_is_the_panel_as_read_back(client: Any, tokens: Tokens) -> None:
    for body in _variants():
        posted = client.post("/api/v1/panels", json=body, headers=auth(tokens.clinic))
        assert posted.status_code == 202, posted.get_json()
        read = client.get(posted.headers["Location"], headers=auth(tokens.clinic))
        assert posted.get_json() == read.get_json()
