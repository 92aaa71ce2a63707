"""The engine's golden output: panels, and a digest of what the engine said about each.

``golden/panels.jsonl.gz`` holds the inputs: panels resampled from the NHANES fixture
(:mod:`tests.unit.nhanes_resample`, with the analytes, units, ages, laboratory ranges and
contexts NHANES lacks mixed in) and every panel the unit tests themselves hand to
``accept_panel`` (their edge cases: band edges, critical limits, calcium, B12, red flags,
rejections). ``golden/digests.txt`` holds, per panel and shipped ruleset, a digest of the
engine's whole answer: the interpretation's ``to_dict()`` with every value's type, or the
rejection's errors. ``test_engine_golden.py`` checks that the engine still says exactly that.

Written once by the engine of the commit that introduced them, and only rewritten on purpose
(a change of clinical output, reviewed as such)::

    .venv/bin/python -m tests.unit.engine_golden capture   # inputs: NHANES + the unit tests'
    .venv/bin/python -m tests.unit.engine_golden digest    # digests, with the engine as it is
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from labinterp.domain import (
    Context,
    PanelRejected,
    RawPanel,
    RawRange,
    RawResult,
    Ruleset,
    Twitching,
    accept_panel,
    interpret,
)

HERE = Path(__file__).resolve().parent / "golden"
PANELS = HERE / "panels.jsonl.gz"
DIGESTS = HERE / "digests.txt"
NHANES_PANELS = 3000
NHANES_SEED = 20261203


# --- panels to and from JSON, every value's type kept ------------------------------------


def _encode(value: Any) -> Any:
    if value is None or type(value) in (bool, int, str):
        return value
    if isinstance(value, Decimal):
        return {"D": str(value)}
    if isinstance(value, dt.datetime):
        return {"dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    raise TypeError(f"cannot keep a {type(value).__name__} in the golden panels")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    if isinstance(value, dict):
        ((tag, text),) = value.items()
        return {
            "D": Decimal,
            "dt": dt.datetime.fromisoformat,
            "date": dt.date.fromisoformat,
        }[tag](text)
    return value


def panel_to_json(panel: RawPanel, now: dt.datetime) -> dict[str, Any]:
    c = panel.context
    t = c.twitching
    return {
        "now": _encode(now),
        "collected_at": _encode(panel.collected_at),
        "sex": panel.sex,
        "birth_date": _encode(panel.birth_date),
        "age_years": panel.age_years,
        "hemolyzed": panel.hemolyzed,
        "specimen_type": panel.specimen_type,
        "results": [
            {
                "analyte": r.analyte,
                "loinc": r.loinc,
                "value": _encode(r.value),
                "unit": r.unit,
                "range": None
                if r.reference_range is None
                else [_encode(r.reference_range.low), _encode(r.reference_range.high)]
                + ([r.reference_range.text] if r.reference_range.text is not None else []),
            }
            for r in panel.results
        ],
        "context": {
            "twitching": None if t is None else [list(t.sites), t.duration_days, t.frequency],
            "symptoms": _encode(c.symptoms),
            "factors": _encode(c.factors),
            "medications": _encode(c.medications),
            "notes": c.notes,
        },
    }


def panel_from_json(doc: dict[str, Any]) -> tuple[RawPanel, dt.datetime]:
    c = doc["context"]
    t = c["twitching"]
    results = []
    for r in doc["results"]:
        rr = r["range"]
        results.append(
            RawResult(
                analyte=r["analyte"],
                loinc=r["loinc"],
                value=_decode(r["value"]),
                unit=r["unit"],
                reference_range=None
                if rr is None
                else RawRange(_decode(rr[0]), _decode(rr[1]), rr[2] if len(rr) > 2 else None),
            )
        )
    panel = RawPanel(
        collected_at=_decode(doc["collected_at"]),
        results=tuple(results),
        sex=doc["sex"],
        birth_date=_decode(doc["birth_date"]),
        age_years=doc["age_years"],
        hemolyzed=doc["hemolyzed"],
        specimen_type=doc["specimen_type"],
        context=Context(
            twitching=None if t is None else Twitching(tuple(t[0]), t[1], t[2]),
            symptoms=_decode(c["symptoms"]),
            factors=_decode(c["factors"]),
            medications=_decode(c["medications"]),
            notes=c["notes"],
        ),
    )
    return panel, _decode(doc["now"])


def read_panels(path: Path = PANELS) -> Iterator[tuple[str, RawPanel, dt.datetime]]:
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            doc = json.loads(line)
            panel, now = panel_from_json(doc["panel"])
            yield doc["case"], panel, now


# --- the engine's answer as text, every value's type kept --------------------------------


def _typed(value: Any) -> Any:
    """JSON with the types a consumer of ``to_dict()`` sees: a Decimal is not its string,
    ``0.70`` is not ``0.7``, an enum member is not its value."""
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is dict:
        return {k: _typed(v) for k, v in value.items()}
    if kind is list:
        return [_typed(v) for v in value]
    if kind is Decimal:
        return {"Decimal": str(value)}
    if isinstance(value, Enum):
        return {kind.__name__: value.value}
    raise TypeError(f"unexpected {kind.__name__} in the engine's output")


def answer(panel: RawPanel, ruleset: Ruleset, now: dt.datetime) -> str:
    """What the engine says about ``panel``, as canonical text."""
    try:
        body: Any = {"interpretation": interpret(accept_panel(panel, ruleset, now), ruleset)}
        body["interpretation"] = body["interpretation"].to_dict()
    except PanelRejected as exc:
        body = {"rejected": exc.errors}
    return json.dumps(_typed(body), ensure_ascii=False, separators=(",", ":"))


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def answers(
    cases: Iterable[tuple[str, RawPanel, dt.datetime]],
    rulesets: dict[str, Ruleset],
    run: Callable[[RawPanel, Ruleset, dt.datetime], str] = answer,
) -> Iterator[tuple[str, str, str]]:
    """(case, ruleset version, answer text) for every case under every ruleset."""
    for case, panel, now in cases:
        for version, ruleset in sorted(rulesets.items()):
            yield case, version, run(panel, ruleset, now)


def read_digests(path: Path = DIGESTS) -> dict[tuple[str, str], str]:
    """{(case, ruleset version): digest}; the first line names the versions' columns."""
    header, *lines = path.read_text().splitlines()
    versions = header.split()[2:]  # "# case 2026.1 2026.2"
    out: dict[tuple[str, str], str] = {}
    for line in lines:
        case, *values = line.split()
        out.update(((case, v), d) for v, d in zip(versions, values, strict=True))
    return out


# --- writing the fixture ---------------------------------------------------------------


def _write_panels(cases: list[tuple[str, RawPanel, dt.datetime]]) -> None:
    HERE.mkdir(exist_ok=True)
    with (
        open(PANELS, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as packed,
    ):
        for case, panel, now in cases:
            line = json.dumps(
                {"case": case, "panel": panel_to_json(panel, now)},
                ensure_ascii=False,
                separators=(",", ":"),
            )
            packed.write(line.encode() + b"\n")


class _Capture:
    """A pytest plugin: every panel handed to ``accept_panel`` while the unit tests run."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[RawPanel, dt.datetime]] = {}
        self.test = ""

    def pytest_runtest_setup(self, item: Any) -> None:
        self.test = item.nodeid

    def pytest_configure(self) -> None:
        import labinterp.domain
        import labinterp.domain.acceptance

        original = labinterp.domain.acceptance.accept_panel

        def recording(panel: RawPanel, ruleset: Ruleset, now: dt.datetime) -> Any:
            if "nhanes" in self.test:  # every NHANES person: the resampled panels cover them
                return original(panel, ruleset, now)
            try:
                key = json.dumps(panel_to_json(panel, now), sort_keys=True)
            except (TypeError, AttributeError):
                pass  # a deliberately malformed panel (wrong types): not a clinical case
            else:
                self.seen.setdefault(key, (panel, now))
            return original(panel, ruleset, now)

        labinterp.domain.acceptance.accept_panel = recording  # type: ignore[assignment]
        labinterp.domain.accept_panel = recording  # type: ignore[attr-defined]


def capture() -> None:
    import pytest

    from tests.unit.nhanes_resample import NHANES, resampled_panels

    plugin = _Capture()
    code = pytest.main(
        ["-q", "-p", "no:cacheprovider", "tests/unit", "-k", "not engine_golden"],
        plugins=[plugin],
    )
    if code != 0:
        raise SystemExit(f"the unit tests failed (exit {code}); capture from a green tree")
    now = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
    cases = [
        (f"nhanes-{i}", panel, now)
        for i, panel in enumerate(resampled_panels(NHANES, NHANES_PANELS, NHANES_SEED, varied=True))
    ]
    cases += [(f"unit-{i}", p, n) for i, (p, n) in enumerate(plugin.seen.values())]
    _write_panels(cases)
    print(f"{PANELS}: {NHANES_PANELS} NHANES-resampled panels, {len(plugin.seen)} from unit tests")


def write_digests() -> None:
    from labinterp.rulesets import load_rulesets

    rulesets = load_rulesets()
    rows: dict[str, list[str]] = {}
    for case, _, text in answers(read_panels(), rulesets):
        rows.setdefault(case, []).append(digest(text))
    lines = [f"# case {' '.join(sorted(rulesets))}"]
    lines += [f"{case} {' '.join(values)}" for case, values in rows.items()]
    DIGESTS.write_text("\n".join(lines) + "\n")
    print(f"{DIGESTS}: {len(rows)} cases x {len(rulesets)} rulesets")


if __name__ == "__main__":
    {"capture": capture, "digest": write_digests}[sys.argv[1]]()
