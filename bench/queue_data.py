"""A clinic of 100,000 interpreted panels for bench/review_queue.py, filled in about a minute.

Templates first, through labinterp's own services, so that every row has the shape the app
writes: the NHANES 2017-18 people (../shared/fixtures/nhanes) posted with ``submit_panel`` to a
second clinic and interpreted by the worker's ``interpret_panels``, which sets each panel's
queue state. The big clinic is then cloned from them set-based: one COPY of the plan, one
INSERT ... SELECT per table. Each clone has its own patient, accession, collection time,
revision, results, context, interpretation and codes, copied from a template of the stratum
(normal, or in the queue at critical, urgent or routine priority) the mix asks for. A
patient's panels (four on average) are clones of different people: the queue reads only the
patient's id.

The templates hold each person's calcium, potassium, sodium, phosphate and albumin in
conventional units; creatinine for 30 % of them (half with the lab's range: without one it is
`IND` and the panel indeterminate); a twitching history for 25 % (a few with symptoms that
raise red flags); and, for 8 %, one electrolyte moved out of range, far enough for some to be
graded urgent or critical (NHANES alone has 2 critical panels among 5,905). The engine decides
every status, priority and code; the mix decides only how often each template is cloned.
Half of the queue (``Mix.reviewed``) is reviewed already, with a review row each; each critical
interpretation has its alert (95 % delivered, 3 % given up, 2 % still trying).
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.orm import Session

from labinterp.db import make_engine
from labinterp.domain import significance
from labinterp.rulesets import load_rulesets
from labinterp.schemas.panels import PanelIn
from labinterp.services.accounts import create_clinic, create_token, resolve_token
from labinterp.services.interpretation import interpret_panels
from labinterp.services.panels import ClinicRef, submit_panel
from labinterp.services.users import create_user

NHANES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "nhanes"
RULESET = "2026.1"
COLUMNS = [  # conventional units, so every value goes through conversion
    ("calcium", "calcium_total_mg_dL", "mg/dL"),
    ("potassium", "potassium_mmol_L", "mmol/L"),
    ("sodium", "sodium_mmol_L", "mmol/L"),
    ("phosphate", "phosphorus_mg_dL", "mg/dL"),
    ("albumin", "albumin_g_dL", "g/dL"),
]
# (analyte, from, to): where a moved value is drawn from; the engine grades it
MOVED = [
    ("potassium", 1.9, 3.3),
    ("potassium", 5.3, 7.4),
    ("sodium", 112, 133),
    ("sodium", 147, 166),
    ("calcium", 5.5, 8.3),
    ("calcium", 10.7, 14.5),
]
SITES = ["eyelid", "calf", "thigh", "arm", "hand", "foot", "back", "toes"]
SYMPTOMS = ["cramps", "numbness", "tingling", "fatigue", "stiffness", "muscle_weakness"]
URGENT_SYMPTOMS = ["muscle_wasting", "walking_difficulty", "slurred_speech"]
FACTORS = ["caffeine", "stress", "fatigue", "dehydration", "intense_exercise", "alcohol"]
MEDICATIONS = ["loop_diuretic", "thiazide_diuretic", "proton_pump_inhibitor", "metformin"]

STRATA = ("normal", "critical", "urgent", "routine")  # normal: outside the queue
BIG, SMALL = "bench-queue", "bench-nhanes"
CLINICIAN, CLINICIAN_OF_BOTH = "queue@bench.test", "both@bench.test"


@dataclass(frozen=True)
class Mix:
    """The big clinic's panels: the queue's share, and the priorities within it."""

    queue: float = 0.40  # flagged or indeterminate; the rest are normal
    critical: float = 0.02  # of the queue
    urgent: float = 0.10  # of the queue; routine is the rest
    reviewed: float = 0.50  # of the queue: reviewed against its newest interpretation

    def weights(self) -> list[float]:
        """In the order of STRATA."""
        routine = 1 - self.critical - self.urgent
        return [1 - self.queue, *(self.queue * s for s in (self.critical, self.urgent, routine))]


@dataclass(frozen=True)
class Filled:
    big: uuid.UUID  # the clinic of the clones
    small: uuid.UUID  # the templates' clinic
    clinician: str  # token of a clinician of the big clinic
    clinician_of_both: str  # token of a clinician of both clinics
    counts: list[tuple[str, str, str, int]]  # (clinic, review status, priority, panels)


@dataclass(frozen=True)
class Template:
    panel_id: uuid.UUID
    revision_id: uuid.UUID
    interpretation_id: uuid.UUID
    stratum: str
    signature: str  # what a review of it signs (domain.significance)


def nhanes_documents(rng: random.Random, now: dt.datetime) -> list[dict[str, Any]]:
    """One panel document per NHANES person with a result, as a clinic would post it."""
    (path,) = sorted(NHANES.glob("*.csv"))
    documents = []
    with path.open() as rows:
        for row in csv.DictReader(rows):
            results = [
                {"analyte": analyte, "value": Decimal(row[column]), "unit": unit}
                for analyte, column, unit in COLUMNS
                if row[column]
            ]
            if not results:
                continue
            if row["creatinine_mg_dL"] and rng.random() < 0.30:
                creatinine: dict[str, Any] = {
                    "analyte": "creatinine",
                    "value": Decimal(row["creatinine_mg_dL"]),
                    "unit": "mg/dL",
                }
                if rng.random() < 0.5:
                    creatinine["reference_range"] = {"low": Decimal("0.6"), "high": Decimal("1.2")}
                results.append(creatinine)
            if rng.random() < 0.08:
                analyte, low, high = rng.choice(MOVED)
                for result in results:
                    if result["analyte"] == analyte:
                        result["value"] = Decimal(f"{rng.uniform(low, high):.1f}")
            collected = now - dt.timedelta(minutes=rng.randrange(60, 730 * 24 * 60))
            document: dict[str, Any] = {
                "accession": f"NH-{row['SEQN']}",
                "patient": {
                    "id": f"NH-{row['SEQN']}",
                    "sex": {"F": "female", "M": "male"}[row["sex"]],
                    "age_years": int(row["age_years"]),
                },
                "collected_at": f"{collected:%Y-%m-%dT%H:%M:00Z}",
                "results": results,
            }
            if rng.random() < 0.25:
                document["context"] = _context(rng)
            documents.append(document)
    return documents


def _context(rng: random.Random) -> dict[str, Any]:
    symptoms = rng.sample(SYMPTOMS, rng.randrange(0, 3))
    if rng.random() < 0.04:
        symptoms.append(rng.choice(URGENT_SYMPTOMS))
    return {
        "twitching": {
            "sites": rng.sample(SITES, rng.choice([1, 1, 1, 2, 3])),
            "duration_days": rng.randrange(1, 120),
            "frequency": rng.choice(["daily", "weekly", "constant"]),
        },
        "symptoms": symptoms,
        "factors": rng.sample(FACTORS, rng.randrange(0, 3)),
        "medications": rng.sample(MEDICATIONS, rng.randrange(0, 2)),
    }


def fill(url: str, panels: int, mix: Mix, seed: int = 6) -> Filled:
    """Both clinics, two clinicians with a token each; ends with VACUUM ANALYZE (what
    autovacuum leaves behind on a table that is mostly read)."""
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    # the fill's own commits need not wait for the disk: nothing measured goes through it
    engine = make_engine(url, connect_args={"options": "-c synchronous_commit=off"})
    try:
        with Session(engine) as session:
            big = create_clinic(session, BIG).id
            small = create_clinic(session, SMALL).id
            create_user(session, CLINICIAN, "bench-password-1", "clinician", [BIG])
            create_user(session, CLINICIAN_OF_BOTH, "bench-password-2", "clinician", [BIG, SMALL])
            clinician = create_token(session, "clinician", [], user_email=CLINICIAN).token
            both = create_token(session, "clinician", [], user_email=CLINICIAN_OF_BOTH).token
            poster = resolve_token(session, create_token(session, "clinic", [SMALL]).token)
        rulesets = load_rulesets()
        schema, clinic = PanelIn(), ClinicRef(small, SMALL)
        ids = [
            submit_panel(
                engine, poster, clinic, schema.load(document), rulesets[RULESET], now
            ).panel_id
            for document in nhanes_documents(rng, now)
        ]
        for start in range(0, len(ids), 200):
            interpret_panels(engine, rulesets, ids[start : start + 200], max_attempts=5)
    finally:
        engine.dispose()
    with psycopg.connect(_plain(url), options="-c synchronous_commit=off") as conn:
        templates = _templates(conn)
        _review(conn, [t for t in templates if t.stratum != "normal"], mix.reviewed, rng)
        _clone(conn, big, templates, panels, mix, rng)
        conn.execute(_REVIEWS, {"reviewer": f"user:{CLINICIAN}"})
        conn.execute(_ALERTS)
    with psycopg.connect(_plain(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        counts = conn.execute(_COUNTS).fetchall()
    return Filled(big, small, clinician, both, counts)


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _templates(conn: psycopg.Connection[Any]) -> list[Template]:
    rows = conn.execute(
        "SELECT p.id, i.revision_id, i.id, p.review_status, p.priority, i.body FROM panels p "
        "JOIN interpretations i ON i.id = p.interpretation_id ORDER BY p.accession"
    ).fetchall()
    return [
        Template(pid, rid, iid, "normal" if status is None else str(priority), significance(body))
        for pid, rid, iid, status, priority, body in rows
    ]


def _review(
    conn: psycopg.Connection[Any], queue: Sequence[Template], share: float, rng: random.Random
) -> None:
    """``share`` of the templates' queue reviewed against its interpretation."""
    conn.execute("CREATE TEMP TABLE bench_reviewed (panel_id uuid, signature text)")
    with conn.cursor().copy("COPY bench_reviewed (panel_id, signature) FROM STDIN") as copy:
        for t in rng.sample(list(queue), round(len(queue) * share)):
            copy.write_row((t.panel_id, t.signature))
    conn.execute(
        "UPDATE panels p SET review_status = 'reviewed', reviewed_signature = r.signature, "
        "reviewed_at = p.updated_at + interval '1 day' FROM bench_reviewed r "
        "WHERE p.id = r.panel_id"
    )


def _clone(
    conn: psycopg.Connection[Any],
    clinic: uuid.UUID,
    templates: Sequence[Template],
    panels: int,
    mix: Mix,
    rng: random.Random,
) -> None:
    pools: dict[str, list[Template]] = {s: [] for s in STRATA}
    for t in templates:
        pools[t.stratum].append(t)
    empty = [s for s, pool in pools.items() if not pool]
    if empty:
        raise RuntimeError(f"no NHANES template is {', '.join(empty)}: change the seed")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    patients = max(1, panels // 4)
    patient_ids = [uuid.uuid4() for _ in range(patients)]
    conn.execute(_PLAN_TABLES)
    with conn.cursor().copy("COPY bench_patients FROM STDIN") as copy:
        for n, pid in enumerate(patient_ids):
            copy.write_row((pid, clinic, f"Q-{n:07d}", rng.choice(["female", "male"])))
    # collection times ascending, as panels arrive: the table's physical order follows them
    minutes = sorted(rng.randrange(60, 730 * 24 * 60) for _ in range(panels))
    times = [now - dt.timedelta(minutes=m) for m in reversed(minutes)]
    with conn.cursor().copy("COPY bench_plan FROM STDIN") as copy:
        for n, (collected, stratum) in enumerate(
            zip(times, rng.choices(STRATA, mix.weights(), k=panels), strict=True)
        ):
            t = rng.choice(pools[stratum])
            reviewed = stratum != "normal" and rng.random() < mix.reviewed
            copy.write_row(
                (
                    n,
                    clinic,
                    uuid.uuid4(),
                    uuid.uuid4(),
                    uuid.uuid4(),
                    rng.choice(patient_ids),
                    f"Q-{n:08d}",
                    collected,
                    reviewed,
                    t.signature if reviewed else None,
                    t.panel_id,
                    t.revision_id,
                    t.interpretation_id,
                )
            )
    for statement in _CLONE:
        conn.execute(statement)


_PLAN_TABLES = """
CREATE TEMP TABLE bench_patients (id uuid, clinic_id uuid, external_id text, sex text);
CREATE TEMP TABLE bench_plan (
    n int, clinic_id uuid, panel_id uuid, revision_id uuid, interpretation_id uuid,
    patient_id uuid, accession text, collected_at timestamptz, reviewed boolean,
    signature text, template_panel uuid, template_revision uuid, template_interpretation uuid
)
"""

# the panel is created three hours after collection and interpreted a second later
_CLONE = [
    """INSERT INTO patients (id, clinic_id, external_id, sex, birth_date, created_at, updated_at)
       SELECT id, clinic_id, external_id, sex, NULL, now(), now() FROM bench_patients""",
    """INSERT INTO panels (id, clinic_id, patient_id, accession, status, current_revision,
           collected_at, created_at, updated_at, enqueued_at, attempts, interpretation_id,
           finding_status, priority, priority_rank, finding_codes, red_flag_codes,
           review_status, reviewed_signature, reviewed_at)
       SELECT b.panel_id, b.clinic_id, b.patient_id, b.accession, t.status, 1, b.collected_at,
              b.collected_at + interval '3 hours', b.collected_at + interval '3 hours 1 second',
              b.collected_at + interval '3 hours', 1, b.interpretation_id, t.finding_status,
              t.priority, t.priority_rank, t.finding_codes, t.red_flag_codes,
              CASE WHEN t.finding_status = 'normal' THEN NULL
                   WHEN b.reviewed THEN 'reviewed' ELSE 'pending' END,
              b.signature,
              CASE WHEN b.reviewed THEN b.collected_at + interval '2 days' END
       FROM bench_plan b JOIN panels t ON t.id = b.template_panel
       ORDER BY b.n""",
    # content_hash: a digest of the clone's own body (not the app's canonical form; nothing
    # here posts the same accession again)
    """INSERT INTO panel_revisions (id, panel_id, revision, content_hash, collected_at, sex,
           birth_date, age_years, hemolyzed, specimen_type, body, created_at, created_by,
           ruleset, collected_utc_offset)
       SELECT b.revision_id, b.panel_id, 1,
              encode(sha256(convert_to(d.body::text, 'UTF8')), 'hex'), b.collected_at, r.sex,
              r.birth_date, r.age_years, r.hemolyzed, r.specimen_type, d.body,
              b.collected_at + interval '3 hours', r.created_by, r.ruleset,
              r.collected_utc_offset
       FROM bench_plan b JOIN panel_revisions r ON r.id = b.template_revision
       CROSS JOIN LATERAL (SELECT r.body || jsonb_build_object(
           'accession', b.accession,
           'collected_at', to_char(b.collected_at AT TIME ZONE 'UTC',
                                   'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'),
           'patient', r.body -> 'patient' || jsonb_build_object('id', p.external_id))
           FROM bench_patients p WHERE p.id = b.patient_id) AS d(body)
       ORDER BY b.n""",
    """INSERT INTO results (revision_id, position, analyte, loinc, reported_value, reported_unit,
           value, unit, lab_low, lab_high, lab_range_text)
       SELECT b.revision_id, r.position, r.analyte, r.loinc, r.reported_value, r.reported_unit,
              r.value, r.unit, r.lab_low, r.lab_high, r.lab_range_text
       FROM bench_plan b JOIN results r ON r.revision_id = b.template_revision
       ORDER BY b.n, r.position""",
    """INSERT INTO panel_contexts (revision_id, twitching, symptoms, factors, medications, notes)
       SELECT b.revision_id, c.twitching, c.symptoms, c.factors, c.medications, c.notes
       FROM bench_plan b JOIN panel_contexts c ON c.revision_id = b.template_revision""",
    """INSERT INTO interpretations (id, panel_id, revision_id, revision, ruleset, created_at,
           status, priority, body)
       SELECT b.interpretation_id, b.panel_id, b.revision_id, 1, i.ruleset,
              b.collected_at + interval '3 hours 1 second', i.status, i.priority, i.body
       FROM bench_plan b JOIN interpretations i ON i.id = b.template_interpretation
       ORDER BY b.n""",
    """INSERT INTO interpretation_codes (interpretation_id, code, kind)
       SELECT b.interpretation_id, c.code, c.kind
       FROM bench_plan b JOIN interpretation_codes c
            ON c.interpretation_id = b.template_interpretation""",
]

_REVIEWS = """
INSERT INTO reviews (id, panel_id, interpretation_id, reviewer, user_id, decision, note,
                     signature, created_at)
SELECT gen_random_uuid(), p.id, p.interpretation_id, %(reviewer)s,
       (SELECT id FROM users WHERE email = 'queue@bench.test'), 'acknowledged', NULL,
       p.reviewed_signature, p.reviewed_at
FROM panels p WHERE p.review_status = 'reviewed'
"""

_ALERTS = """
INSERT INTO alerts (id, interpretation_id, panel_id, clinic_id, status, attempts, created_at,
                    next_attempt_at, give_up_at, delivered_at, last_error)
SELECT gen_random_uuid(), i.id, p.id, p.clinic_id, a.status,
       CASE a.status WHEN 'delivered' THEN 1 ELSE 6 END, i.created_at,
       CASE a.status WHEN 'pending' THEN now() + interval '5 minutes' END,
       i.created_at + interval '1 day',
       CASE a.status WHEN 'delivered' THEN i.created_at + interval '1 second' END,
       CASE a.status WHEN 'delivered' THEN NULL ELSE 'HTTP 503' END
FROM panels p JOIN interpretations i ON i.id = p.interpretation_id
CROSS JOIN LATERAL (SELECT CASE WHEN h < 0.95 THEN 'delivered' WHEN h < 0.98 THEN 'gave_up'
                                ELSE 'pending' END
                    FROM (SELECT random() + 0 * length(p.id::text)) AS r(h)) AS a(status)
WHERE p.priority = 'critical'
"""

_COUNTS = """
SELECT c.name, coalesce(p.review_status, 'not in the queue'), coalesce(p.priority, '-'),
       count(*)
FROM panels p JOIN clinics c ON c.id = p.clinic_id
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""
