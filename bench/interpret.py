"""Panels per second through the pure engine (accept + interpret), against parsing alone."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labinterp.domain import accept_panel, interpret
from labinterp.rulesets import load_rulesets
from labinterp.schemas.panels import PanelIn, to_raw_panel
from tests.integration.test_nhanes import NHANES, panel_from_row


def main() -> None:
    import csv

    rows = list(csv.DictReader(NHANES[0].open()))
    documents = [panel_from_row(r) for r in rows]
    documents = [d for d in documents if d["results"]]
    for d in documents:
        d["collected_at"] = "2018-06-30T09:00:00Z"
    schema = PanelIn()
    loaded = [
        schema.load({**d, "results": [{**r, "value": r["value"]} for r in d["results"]]})
        for d in documents
    ]
    ruleset = load_rulesets()["2026.1"]
    now = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)

    start = time.perf_counter()
    raws = [to_raw_panel(d) for d in loaded]
    baseline = time.perf_counter() - start

    start = time.perf_counter()
    for raw in raws:
        interpret(accept_panel(raw, ruleset, now), ruleset).to_dict()
    engine = time.perf_counter() - start

    n = len(raws)
    print(f"panels: {n} (NHANES 2017-18, 6 analytes each at most)")
    print(f"baseline (document -> domain objects): {n / baseline:,.0f} panels/s")
    print(f"engine (accept + interpret + to_dict):  {n / engine:,.0f} panels/s")
    print(f"ratio engine/baseline time: {engine / baseline:.1f}x")
    print("reference: reprocessing floor in MEASURED.md is ~62,000 panels/s of pure I/O")


if __name__ == "__main__":
    main()
