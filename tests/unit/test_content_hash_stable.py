"""The content hash is the idempotency key of every stored panel: a retry of a panel stored by
an earlier release must hash the same, or it is compared field by field (slower) instead of
being recognised at once. These digests were computed before the hash was last made faster;
any change to them is a change of the key, to be made on purpose."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from labinterp.demo import SAMPLE_PANELS
from labinterp.schemas.panels import PanelIn
from labinterp.services.panels import _canonical_document, _canonical_text, content_hash

DIGESTS = [
    "31ad8ea67ca9078b0737bdcc08182048310e115f95bd4ae51422099b980e5e06",
    "f7c53ebfb91a18ac4956216e4e0a357ca91e02c6299956c5a9f5bb29b4acd3f0",
    "075d345061901047ed4c58c5f987bb7859818d9060049ee16589973575f2a0b0",
    "55d23f8412583c46792a73d72822231251cd44aef80212d3018b8e1de9b7a831",
    "086497a1077b167ac32927af079626f291cbffa59bc91e26b54704ead39ac879",
    "49bb050be39ae55041845c865505ec30c78e7d5d99bc092996dac739b224a1a2",
    "9feaa79b571808dd3cae08ec3bcf888efe62868ef463bdc56002032858635a10",
    "a5c07e666aceba3f3599983fd347a88a52250936cb00acf80d21718da98133af",
]


def _documents() -> list[dict[str, Any]]:
    out = [copy.deepcopy(panel) for panel in SAMPLE_PANELS]
    odd = copy.deepcopy(SAMPLE_PANELS[0])  # non-ASCII text, an offset, a padded decimal
    odd["context"]["notes"] = "Zuckungen im Fuß — 2 Wochen, ü"
    odd["collected_at"] = "2026-11-20T08:30:00.123456+05:30"
    odd["results"][0]["value"] = 1.10
    out.append(odd)
    return out


def test_the_samples_are_the_ones_the_digests_were_taken_of() -> None:
    assert len(_documents()) == len(DIGESTS)


@pytest.mark.parametrize(("index", "digest"), list(enumerate(DIGESTS)))
def test_a_panel_hashes_as_it_did_in_earlier_releases(index: int, digest: str) -> None:
    assert content_hash(PanelIn().load(_documents()[index])) == digest


@pytest.mark.parametrize(
    "document",
    [
        {"accession": "A", "results": []},
        {"accession": "A"},  # no results at all
        {"accession": "A", "context": {"notes": 'say "results":[] twice: "results":[]'}},
        {"accession": "A", "context": {"results": [], "x": {"results": ["y"]}}},
        {"results": [{"analyte": "b", "value": 1}, {"analyte": "a", "value": 2}], "z": None},
    ],
    ids=["empty", "absent", "text", "nested", "ordered"],
)
def test_the_hash_is_of_the_canonical_text_of_the_whole_document(document: dict[str, Any]) -> None:
    """content_hash writes each result once and puts them in place; the text is still the
    canonical text of the whole canonical document, whatever the document holds."""
    whole = _canonical_text(_canonical_document(document))
    assert content_hash(document) == hashlib.sha256(whole.encode()).hexdigest()
