"""One schema per output shape: what the engine writes is what the API shows, key for key.

The interpretation document is stored as the engine's ``to_dict`` and shown through
schemas/output.InterpretationOut; a key the engine adds that the schema does not declare
would silently vanish from the API, so these compare the two on panels that exercise every
optional member (critical limits, corrected calcium's measured value, red flags, factors,
follow-ups, notes, a laboratory's own range).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from labinterp.domain import Interpretation
from labinterp.domain.types import Twitching
from labinterp.jsontext import dumps
from labinterp.schemas.output import InterpretationOut
from labinterp.services.reading import interpretation_view
from tests.builders import res, run


def _json(value: Any) -> Any:
    return json.loads(dumps(value))


def _shown(interpretation: Interpretation) -> dict[str, Any]:
    body = _json(interpretation.to_dict())
    row = SimpleNamespace(
        id=uuid.uuid4(),
        panel_id=uuid.uuid4(),
        revision=1,
        ruleset=body["ruleset"],
        created_at=dt.datetime(2026, 11, 20, tzinfo=dt.UTC),
        status=body["status"],
        priority=body["priority"],
        body=body,
    )
    return dict(_json(InterpretationOut().dump(interpretation_view(row))))  # type: ignore[arg-type]


PANELS = {
    "critical potassium with weakness and a diuretic": lambda: run(
        res("potassium", "2.4", "mmol/L"),
        res("magnesium", "1.1", "mg/dL"),
        twitching=Twitching(sites=("toes", "calf"), duration_days=21, frequency="daily"),
        symptoms=("muscle_weakness", "numbness"),
        medications=("loop_diuretic",),
        factors=("caffeine",),
    ),
    "corrected calcium (measured total kept)": lambda: run(
        res("calcium", "7.0", "mg/dL"), res("albumin", "2.5", "g/dL")
    ),
    "a laboratory's own range, vitamins": lambda: run(
        res("vitamin_b12", "180", "pg/mL", low="200", high="900"),
        res("vitamin_d_25oh", "14", "ng/mL"),
    ),
    "no age given (a note)": lambda: run(
        res("magnesium", "0.8", "mmol/L"), birth_date=None, age_years=None
    ),
}


@pytest.mark.parametrize("name", list(PANELS))
def test_the_interpretation_schema_shows_every_key_the_engine_writes(name: str) -> None:
    interpretation = PANELS[name]()
    body = _json(interpretation.to_dict())
    shown = _shown(interpretation)
    for key in ("results", "findings", "red_flags", "contributing_factors", "follow_up", "notes"):
        assert shown[key] == body[key], key
    assert shown["summary"] == body["summary"]
    assert (shown["status"], shown["priority"]) == (body["status"], body["priority"])


def test_the_panels_exercise_the_optional_members() -> None:
    """The comparison above would prove little if no panel had them."""
    everything = json.dumps([_json(p().to_dict()) for p in PANELS.values()])
    for member in ('"critical_limit"', '"measured"', '"red_flags": [{', '"notes": [{'):
        assert member in everything, member
