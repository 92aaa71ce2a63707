"""Panels around the edges that ruleset 2026.2 moves (CLINICAL.md: adult magnesium lower limit
0.85 mmol/L instead of 0.70; vitamin D deficiency < 50 nmol/L and insufficiency 50 to < 75
instead of < 30 and 30 to < 50), imported through the import service and interpreted under
2026.1 by the worker's own unit of work."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from dataclasses import dataclass

from sqlalchemy import select

from labinterp.models import Panel
from labinterp.runtime import Runtime
from labinterp.services.accounts import create_clinic
from labinterp.services.audit import Actor
from labinterp.services.importing import (
    HEADER,
    ErrorReport,
    import_panels,
    open_source,
    read_panels,
)
from labinterp.services.interpretation import interpret_panels
from labinterp.services.panels import ClinicRef

ADULT = "1970-05-01"
CHILD = "2015-05-01"  # 9 years old at collection: the pediatric band, unchanged in 2026.2


@dataclass(frozen=True)
class Edge:
    """One panel of one result, and what 2026.2 does to its 2026.1 findings."""

    name: str
    analyte: str
    value: str
    unit: str
    birth_date: str
    gained: frozenset[str] = frozenset()
    lost: frozenset[str] = frozenset()
    newly_flagged: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.gained or self.lost)


def _edge(name: str, analyte: str, value: str, unit: str, born: str = ADULT, **kw: object) -> Edge:
    gained = frozenset(str(kw.pop("gained", "")).split()) if "gained" in kw else frozenset()
    lost = frozenset(str(kw.pop("lost", "")).split()) if "lost" in kw else frozenset()
    return Edge(name, analyte, value, unit, born, gained, lost, bool(kw.get("newly_flagged")))


EDGES = (
    # adult magnesium: 0.70-1.10 becomes 0.85-1.10
    _edge("MG-069", "magnesium", "0.69", "mmol/L"),  # low under both
    _edge("MG-070", "magnesium", "0.70", "mmol/L", gained="hypomagnesemia", newly_flagged=True),
    _edge("MG-080", "magnesium", "0.80", "mmol/L", gained="hypomagnesemia", newly_flagged=True),
    _edge("MG-084", "magnesium", "0.84", "mmol/L", gained="hypomagnesemia", newly_flagged=True),
    _edge("MG-085", "magnesium", "0.85", "mmol/L"),  # the new limit itself is normal
    _edge("MG-KID-080", "magnesium", "0.80", "mmol/L", CHILD),  # pediatric band unchanged
    # vitamin D: deficiency < 30 -> < 50, insufficiency 30-<50 -> 50-<75 nmol/L
    _edge("D-025", "vitamin_d_25oh", "25", "nmol/L"),  # deficient under both
    _edge(
        "D-030",
        "vitamin_d_25oh",
        "30",
        "nmol/L",
        gained="vitamin_d_deficiency",
        lost="vitamin_d_insufficiency",
    ),
    _edge(
        "D-049",
        "vitamin_d_25oh",
        "49",
        "nmol/L",
        gained="vitamin_d_deficiency",
        lost="vitamin_d_insufficiency",
    ),
    _edge(
        "D-050",
        "vitamin_d_25oh",
        "50",
        "nmol/L",
        gained="vitamin_d_insufficiency",
        newly_flagged=True,
    ),
    _edge(
        "D-074",
        "vitamin_d_25oh",
        "74",
        "nmol/L",
        gained="vitamin_d_insufficiency",
        newly_flagged=True,
    ),
    _edge("D-075", "vitamin_d_25oh", "75", "nmol/L"),  # sufficient under both
    # 20 ng/mL is 50 nmol/L (CLINICAL.md's rounding): insufficient under 2026.2 only
    _edge(
        "D-20NG",
        "vitamin_d_25oh",
        "20",
        "ng/mL",
        gained="vitamin_d_insufficiency",
        newly_flagged=True,
    ),
    _edge("K-026", "potassium", "2.6", "mmol/L"),  # neither ruleset moves potassium
    _edge("K-041", "potassium", "4.1", "mmol/L"),
)


def edge_csv(copies: int = 1) -> str:
    """Every edge ``copies`` times (accessions ``NAME#n``), one row each."""
    buffer = io.StringIO()
    buffer.write(",".join(HEADER) + "\n")
    for n in range(copies):
        for edge in EDGES:
            buffer.write(
                f"{edge.name}#{n},P-{edge.name}-{n},female,{edge.birth_date},"
                f"2025-03-01T08:30:00Z,{edge.analyte},{edge.value},{edge.unit},,\n"
            )
    return buffer.getvalue()


def load_edges(runtime: Runtime, copies: int = 1, clinic: str = "north") -> dict[str, uuid.UUID]:
    """Import the edges for ``clinic`` (made here) and interpret them under 2026.1; returns
    panel id by accession."""
    with runtime.session_factory() as session:
        found = create_clinic(session, clinic)
        ref = ClinicRef(found.id, found.name)
    with open_source("-", stdin=io.BytesIO(edge_csv(copies).encode())) as source:
        summary = import_panels(
            runtime.engine,
            Actor(name="cli:test", role="admin"),
            ref,
            read_panels(source.text),
            runtime.rulesets["2026.1"],
            dt.datetime.now(dt.UTC),
            ErrorReport(None),
        )
    assert summary.imported == len(EDGES) * copies, summary
    with runtime.session_factory() as session:
        ids = {
            name: panel_id for name, panel_id in session.execute(select(Panel.accession, Panel.id))
        }
    for start in range(0, len(ids), 500):
        batch = list(ids.values())[start : start + 500]
        outcome = interpret_panels(runtime.engine, runtime.rulesets, batch, max_attempts=5)
        assert len(outcome.interpreted) == len(batch), outcome.summary()
    return ids
