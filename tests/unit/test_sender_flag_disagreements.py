"""The sender's flag beside ours: a contradiction is said, a difference of degree is not."""

from __future__ import annotations

from decimal import Decimal

import pytest

from labinterp.domain.disagreements import contradicts, with_sender_flags


@pytest.mark.parametrize(
    ("sender", "ours", "expected"),
    [
        ("L", "N", True),  # sodium 138 flagged L inside its own 136-145
        ("H", "L", True),
        ("N", "HH", True),
        ("A", "N", True),
        ("LL", "L", False),  # degree, not direction
        ("hh", "H", False),
        ("A", "H", False),
        ("N", "N", False),
        ("L", "IND", False),  # nothing to contradict
        ("166717003", "H", False),  # a SNOMED CT code: not a direction we read
        (None, "N", False),
    ],
)
def test_a_flag_contradicts_ours_only_in_direction(
    sender: str | None, ours: str, expected: bool
) -> None:
    assert contradicts(sender, ours) is expected


def _body() -> dict[str, object]:
    return {
        "status": "normal",
        "priority": "routine",
        "summary": "No findings.",
        "notes": [],
        "results": [
            {
                "position": 0,
                "analyte": "sodium",
                "interpretation": "N",
                "reported": {"value": Decimal("138"), "unit": "mmol/L"},
                "reference_range": {
                    "low": Decimal("136"),
                    "high": Decimal("145"),
                    "unit": "mmol/L",
                    "source": "lab",
                },
            },
            {"position": 1, "analyte": "potassium", "interpretation": "L"},
        ],
    }


def test_a_contradiction_is_noted_and_summarised_without_changing_the_judgement() -> None:
    body = _body()
    judged = with_sender_flags(body, {0: "L", 1: "L"})
    sodium, potassium = judged["results"]
    assert (sodium["interpretation"], sodium["sender_flag"], sodium["sender_flag_disagrees"]) == (
        "N",
        "L",
        True,
    )
    assert (potassium["sender_flag"], potassium["sender_flag_disagrees"]) == ("L", False)
    [note] = judged["notes"]
    assert note["code"] == "sender_flag_disagrees" and note["analyte"] == "sodium"
    assert "flagged it L (low)" in note["detail"]
    assert "laboratory's range 136–145 mmol/L" in note["detail"]
    assert judged["summary"].endswith("disagrees with labinterp's for sodium (see the notes).")
    assert (judged["status"], judged["priority"]) == ("normal", "routine")
    assert body["notes"] == [] and "sender_flag" not in body["results"][0]  # type: ignore[index]


def test_without_sender_flags_the_document_is_the_engines() -> None:
    body = _body()
    assert with_sender_flags(body, {}) is body
    assert with_sender_flags(body, {0: None}) is body
