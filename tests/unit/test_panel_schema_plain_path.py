"""PanelIn's plain path (a well-formed panel loaded without marshmallow's machinery) gives
exactly what marshmallow gives, and steps aside for anything else: every field of several
panels replaced, one at a time and at random, by values valid and invalid."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from marshmallow import Schema, ValidationError

from labinterp.demo import SAMPLE_PANELS
from labinterp.jsontext import dumps, loads
from labinterp.schemas.fields import Identifier
from labinterp.schemas.panels import PanelIn, load_plain_panel

JUNK: list[Any] = [
    None,
    "",
    " ",
    "x" * 101,
    "x" * 61,
    "x" * 501,
    0,
    -1,
    7,
    131,
    1.5,
    Decimal("0.45"),
    Decimal("1E+13"),
    Decimal("1.234567890123456789012"),
    10**41,
    True,
    False,
    [],
    {},
    ["toes"],
    ["x" * 101],
    [""],
    [1],
    "nul\x00here",
    "tab\there",
    "\u200b",
    "  LAB-1  ",
    "2026-11-20",
    "2026-11-20T08:30:00+05:30",
    "2026-11-20T08:30:00",
    "1899-12-31T23:00:00Z",
    "1984-03-09",
    "19840309",
    "male",
    "unknown",
    "serum",
    " Plasma ",
    "urine",
    {"low": 1, "high": 2},
    {"low": 1, "unit": "mg/dL"},
    {"text": "4-6"},
    {"sites": ["toes"], "duration_days": 3},
    {"sites": "toes"},
]


def base_panels() -> list[dict[str, Any]]:
    """The demo's panels as the JSON parser hands them over, and a few plainer shapes."""
    panels = [loads(dumps(p)) for p in SAMPLE_PANELS]
    bare = {
        "accession": "A-1",
        "patient": {"id": "P"},
        "collected_at": "2026-11-20T08:30:00Z",
        "results": [{"analyte": "potassium", "value": 4, "unit": "mmol/L"}],
    }
    full = copy.deepcopy(panels[0])
    full["specimen"] = {"type": "plasma", "hemolyzed": True}
    full["patient"]["age_years"] = 41
    full["context"]["twitching"]["duration_days"] = None
    full["results"][0]["reference_range"] = {"low": Decimal("0.70"), "high": None, "text": "x"}
    full["unknown_field"] = {"ignored": True}
    return [*panels, bare, full]


def paths(value: Any, here: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield here
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*here, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*here, index))


def replaced(doc: Any, path: tuple[Any, ...], new: Any) -> Any:
    doc = copy.deepcopy(doc)
    if not path:
        return new
    target = doc
    for step in path[:-1]:
        target = target[step]
    if new is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = copy.deepcopy(new)
    return doc


_DELETE = object()


def marshmallow_load(doc: Any) -> Any:
    """PanelIn's full marshmallow path (its own load, without the plain path)."""
    try:
        return Schema.load(PanelIn(), doc)
    except ValidationError:
        return ValidationError


def check(doc: Any) -> bool:
    plain = load_plain_panel(doc)
    if plain is not None:
        assert plain == marshmallow_load(doc), doc
    return plain is not None


@pytest.mark.parametrize("base", base_panels(), ids=lambda p: p["accession"])
def test_the_plain_path_takes_every_base_panel_and_matches_marshmallow(base):
    assert check(base)
    assert PanelIn().load(base) == marshmallow_load(base)


@pytest.mark.parametrize("base", base_panels(), ids=lambda p: p["accession"])
def test_every_field_replaced_by_anything_is_loaded_alike_or_left_to_marshmallow(base):
    taken = left = 0
    for path in list(paths(base)):
        for new in [*JUNK, _DELETE] if path else JUNK:
            if check(replaced(base, path, new)):
                taken += 1
            else:
                left += 1
    assert taken > 50 and left > 50  # both paths were exercised


def test_random_combinations_of_replacements_are_loaded_alike_or_left_to_marshmallow():
    rng = random.Random(20261202)
    bases = base_panels()
    for _ in range(3000):
        doc = rng.choice(bases)
        for _ in range(rng.randint(1, 4)):
            path = rng.choice(list(paths(doc))[1:])
            doc = replaced(doc, path, rng.choice([*JUNK, _DELETE]))
        check(doc)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("LAB-2026-000123", True),
        ("  Müller/4711 ", True),  # stripped, non-ASCII letters
        ("患者-7", True),
        ("a\u200bb", True),  # a format character beside visible ones
        ("\u00a0x\u00a0", True),  # no-break spaces around a letter
        ("\u200b", False),  # nothing visible
        ("\u2028", False),  # a line separator alone
        ("\u00a0\u2003", False),  # separators only
        ("LAB\u00857", False),  # a C1 control character (NEL)
        ("LAB\x7f7", False),  # DEL
    ],
)
def test_an_identifier_is_kept_only_with_something_visible_and_no_control_character(
    text: str, kept: bool
) -> None:
    try:
        loaded = Identifier().deserialize(text)
    except ValidationError:
        assert not kept, text
    else:
        assert kept, text
        assert loaded == text.strip()
