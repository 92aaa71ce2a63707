"""The queries the code runs use the indexes the migrations made for them, checked with
EXPLAIN on PostgreSQL with enough rows that a sequential scan would be chosen if it were
cheaper: 20,000 panels of 5,000 patients in 20 clinics, loaded set-based, then analysed;
40 % of them in the review queue, half of those pending.

The SQL is what the repository functions send, caught on its way to the server, so a change
in the shape of a query (a join, a function around a column, an ORDER BY the index cannot
serve) fails here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from labinterp.db import make_engine, make_session_factory, upgrade_database
from labinterp.repositories.panels import PanelFilter, get_by_accession, list_panels
from labinterp.repositories.review import QueueFilter, queue_counts, queue_page
from tests.integration.services import fresh_postgres_database

pytestmark = pytest.mark.postgres

CLINICS, PATIENTS_PER_CLINIC, PANELS_PER_PATIENT = 20, 250, 4

LOAD = [
    f"""INSERT INTO clinics (id, name, created_at)
        SELECT gen_random_uuid(), 'clinic-' || lpad(n::text, 2, '0'), now()
        FROM generate_series(1, {CLINICS}) AS n""",
    # the same external ids in every clinic: a patient id an admin looks up across clinics
    f"""INSERT INTO patients (id, clinic_id, external_id, sex, birth_date, created_at, updated_at)
        SELECT gen_random_uuid(), c.id, 'P-' || lpad(n::text, 5, '0'), 'female',
               DATE '1950-01-01' + n, now(), now()
        FROM clinics AS c, generate_series(1, {PATIENTS_PER_CLINIC}) AS n""",
    f"""INSERT INTO panels (id, clinic_id, patient_id, accession, status, current_revision,
                           collected_at, created_at, updated_at)
        SELECT gen_random_uuid(), p.clinic_id, p.id, 'ACC-' || p.external_id || '-' || r,
               'interpreted', 1,
               TIMESTAMPTZ '2026-01-01 00:00+00'
                 + (hashtext(p.id::text || r) % 300) * INTERVAL '1 day',
               now(), now()
        FROM patients AS p, generate_series(1, {PANELS_PER_PATIENT}) AS r""",
    # the review queue: 40 % flagged (the rest normal), of which 2 % critical and 10 % urgent;
    # half of the queue pending, half reviewed
    """UPDATE panels SET finding_status = q.status, priority = q.priority,
                         priority_rank = q.rank, review_status = q.review_status
       FROM (SELECT id,
                    CASE WHEN h < 600 THEN 'normal' ELSE 'flagged' END AS status,
                    CASE WHEN h BETWEEN 600 AND 607 THEN 'critical'
                         WHEN h BETWEEN 608 AND 647 THEN 'urgent' ELSE 'routine' END AS priority,
                    CASE WHEN h BETWEEN 600 AND 607 THEN 0
                         WHEN h BETWEEN 608 AND 647 THEN 1 ELSE 2 END AS rank,
                    CASE WHEN h < 600 THEN NULL
                         WHEN h % 2 = 0 THEN 'pending' ELSE 'reviewed' END AS review_status
             FROM (SELECT id, abs(hashtext(id::text)) % 1000 AS h FROM panels) AS hashed) AS q
       WHERE q.id = panels.id""",
]


@contextmanager
def sent_statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """(SQL, parameters) of every statement the engine sends while the block runs."""
    sent: list[tuple[str, Any]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many):  # type: ignore[no-untyped-def]
        sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _explain(engine: Engine, statement: str, parameters: Any) -> list[dict[str, Any]]:
    """The plan's nodes, for the statement as sent, with the values it was sent with."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
        (document,) = cursor.fetchone()
        cursor.close()
    finally:
        connection.close()
    return list(_nodes(document[0]["Plan"]))


def _describe(nodes: list[dict[str, Any]]) -> str:
    return " > ".join(
        node["Node Type"]
        + (f" on {node['Relation Name']}" if "Relation Name" in node else "")
        + (f" using {node['Index Name']}" if "Index Name" in node else "")
        for node in nodes
    )


@pytest.fixture(scope="module")
def loaded() -> Iterator[tuple[Engine, dict[str, Any]]]:
    with fresh_postgres_database("labinterp_plans") as url:
        upgrade_database(url)
        engine = make_engine(url)
        with engine.begin() as connection:
            for statement in LOAD:
                connection.execute(text(statement))
            facts = {
                "clinics": list(
                    connection.scalars(text("SELECT id FROM clinics ORDER BY name LIMIT 2"))
                ),
                "panels": connection.scalar(text("SELECT count(*) FROM panels")),
            }
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))  # statistics, and the visibility map
        yield engine, facts
        engine.dispose()


def _plans_of(
    engine: Engine, call: Callable[[Session], object], table: str = "panels"
) -> list[list[dict[str, Any]]]:
    """The plans of the statements ``call`` sends that read ``table``."""
    with make_session_factory(engine)() as session, sent_statements(engine) as sent:
        call(session)
    plans = [
        _explain(engine, statement, parameters)
        for statement, parameters in sent
        if f"FROM {table}" in statement
    ]
    assert plans, f"no statement read {table}"
    return plans


def _assert_no_seq_scan(nodes: list[dict[str, Any]], what: str) -> None:
    scanned = [
        n["Relation Name"]
        for n in nodes
        if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in ("panels", "patients")
    ]
    assert not scanned, f"{what}: sequential scan of {scanned}: {_describe(nodes)}"


def _indexes(nodes: list[dict[str, Any]]) -> set[str]:
    return {n["Index Name"] for n in nodes if "Index Name" in n}


def test_the_data_is_large_enough_to_matter(loaded: tuple[Engine, dict[str, Any]]) -> None:
    _, facts = loaded
    assert facts["panels"] == CLINICS * PATIENTS_PER_CLINIC * PANELS_PER_PATIENT == 20_000


def test_a_clinics_panel_list_reads_its_clinic_by_collection_time(
    loaded: tuple[Engine, dict[str, Any]],
) -> None:
    engine, facts = loaded
    clinic = facts["clinics"][0]
    count, page = _plans_of(
        engine, lambda s: list_panels(s, PanelFilter(clinic_ids=[clinic]), page=3, per_page=50)
    )
    print(f"\nclinic list, count: {_describe(count)}\nclinic list, page:  {_describe(page)}")
    for nodes in (count, page):
        _assert_no_seq_scan(nodes, "a clinic's panel list")
    assert "ix_panels_clinic_id_collected_at" in _indexes(page), _describe(page)
    assert not any(n["Node Type"] == "Sort" for n in page), "the index gives the order"


def test_a_clinician_of_two_clinics_lists_without_a_sequential_scan(
    loaded: tuple[Engine, dict[str, Any]],
) -> None:
    engine, facts = loaded
    clinics = facts["clinics"]
    for nodes in _plans_of(
        engine, lambda s: list_panels(s, PanelFilter(clinic_ids=clinics), page=1, per_page=50)
    ):
        print(f"\nclinician list: {_describe(nodes)}")
        _assert_no_seq_scan(nodes, "a clinician's panel list")


def test_an_admin_finds_a_patients_panels_across_clinics_by_the_patients_id(
    loaded: tuple[Engine, dict[str, Any]],
) -> None:
    engine, _ = loaded
    plans = _plans_of(
        engine,
        lambda s: list_panels(
            s, PanelFilter(clinic_ids=None, patient_id="P-00042"), page=1, per_page=50
        ),
    )
    for nodes in plans:
        print(f"\nadmin list by patient_id: {_describe(nodes)}")
        _assert_no_seq_scan(nodes, "an admin's lookup by patient id")
        assert {"ix_patients_external_id", "ix_panels_patient_id"} <= _indexes(nodes), _describe(
            nodes
        )


def test_a_panel_is_found_by_its_clinic_and_accession(
    loaded: tuple[Engine, dict[str, Any]],
) -> None:
    engine, facts = loaded
    clinic = facts["clinics"][0]
    (lookup,) = _plans_of(engine, lambda s: get_by_accession(s, clinic, "ACC-P-00042-3"))
    listed = _plans_of(
        engine,
        lambda s: list_panels(
            s, PanelFilter(clinic_ids=[clinic], accession="ACC-P-00042-3"), page=1, per_page=50
        ),
    )
    for what, nodes in [("get_by_accession", lookup)] + [("list by accession", n) for n in listed]:
        print(f"\n{what}: {_describe(nodes)}")
        _assert_no_seq_scan(nodes, what)
        assert "uq_panels_clinic_id_accession" in _indexes(nodes), _describe(nodes)


def test_the_statements_checked_are_the_ones_the_repository_sends(
    loaded: tuple[Engine, dict[str, Any]],
) -> None:
    """The list's page query is the shape the index serves: a clinic, newest collection
    first, then id (the tie-break), with LIMIT and OFFSET."""
    engine, facts = loaded
    with make_session_factory(engine)() as session, sent_statements(engine) as sent:
        list_panels(session, PanelFilter(clinic_ids=[facts["clinics"][0]]), page=2, per_page=25)
    page = next(s for s, _ in sent if "ORDER BY" in s and "FROM panels" in s)
    flat = " ".join(page.split())
    assert "WHERE panels.clinic_id IN" in flat
    assert "ORDER BY panels.collected_at DESC, panels.id" in flat and "LIMIT" in flat
    assert isinstance(facts["clinics"][0], uuid.UUID)


def _sorted_at_most(nodes: list[dict[str, Any]], rows: int, what: str) -> None:
    """No Sort takes in more than ``rows`` rows (as planned): the index gives the order, and
    only a page's worth is ever sorted (an Incremental Sort only breaks the index's ties)."""
    for node in nodes:
        if node["Node Type"] == "Sort":
            fed = node["Plans"][0]["Plan Rows"]
            assert fed <= rows, f"{what}: a Sort of {fed} rows: {_describe(nodes)}"


def test_the_pending_queue_reads_its_clinics_index_range_and_counts_from_the_index(
    loaded: tuple[Engine, dict[str, Any]],
) -> None:
    engine, facts = loaded
    where = QueueFilter(clinic_ids=[facts["clinics"][0]])
    for page_number in (1, 5):
        page, count = _plans_of(
            engine, lambda s, n=page_number: queue_page(s, where, (n - 1) * 20, 20)
        )
        print(f"\nqueue page {page_number}: {_describe(page)}\nqueue count: {_describe(count)}")
        for nodes in (page, count):
            _assert_no_seq_scan(nodes, "the review queue")
        assert "ix_panels_review_queue" in _indexes(page), _describe(page)
        _sorted_at_most(page, page_number * 20, "the review queue")
        assert any(
            n["Node Type"] == "Index Only Scan" and n["Index Name"] == "ix_panels_review_queue"
            for n in count
        ), _describe(count)


def test_a_clinician_of_two_clinics_sorts_each_clinics_first_rows_not_every_pending_row(
    loaded: tuple[Engine, dict[str, Any]],
) -> None:
    engine, facts = loaded
    where = QueueFilter(clinic_ids=facts["clinics"])
    page, _count = _plans_of(engine, lambda s: queue_page(s, where, 40, 20))
    print(f"\ntwo clinics, queue page 3: {_describe(page)}")
    _assert_no_seq_scan(page, "the review queue of two clinics")
    scans = [n for n in page if n.get("Index Name") == "ix_panels_review_queue"]
    assert len(scans) == 2, f"one ordered range per clinic: {_describe(page)}"
    _sorted_at_most(page, 2 * 60, "the review queue of two clinics")


def test_the_queue_of_two_clinics_pages_through_both_in_queue_order(
    loaded: tuple[Engine, dict[str, Any]],
) -> None:
    """Each clinic's rows are merged: page by page, the same ids in the same order as one
    ORDER BY over both clinics, ties in collection time broken by id."""
    engine, facts = loaded
    clinics = facts["clinics"]
    with make_session_factory(engine)() as session:
        expected = list(
            session.scalars(
                text(
                    "SELECT id FROM panels WHERE clinic_id IN (:a, :b) AND review_status = "
                    "'pending' ORDER BY priority_rank, collected_at, id"
                ),
                {"a": clinics[0], "b": clinics[1]},
            )
        )
        seen, totals = [], set()
        for offset in range(0, len(expected) + 30, 30):
            rows, total = queue_page(session, QueueFilter(clinic_ids=clinics), offset, 30)
            seen += [row.panel_id for row in rows]
            totals.add(total)
    assert len(expected) > 300  # several pages, ties among them
    assert seen == expected
    assert totals == {len(expected)}


def test_the_filter_counts_read_the_queue_index_only(
    loaded: tuple[Engine, dict[str, Any]],
) -> None:
    engine, facts = loaded
    clinic = facts["clinics"][0]
    (nodes,) = _plans_of(engine, lambda s: queue_counts(s, [clinic]))
    print(f"\nqueue filter counts: {_describe(nodes)}")
    assert any(
        n["Node Type"] == "Index Only Scan" and n["Index Name"] == "ix_panels_review_queue"
        for n in nodes
    ), _describe(nodes)
    with make_session_factory(engine)() as session:
        counts = queue_counts(session, [clinic])
        plain = session.execute(
            text(
                "SELECT CASE review_status WHEN 'pending' THEN priority ELSE review_status END, "
                "count(*) FROM panels WHERE clinic_id = :c AND review_status IS NOT NULL "
                "GROUP BY 1"
            ),
            {"c": clinic},
        )
        assert counts == {str(key): n for key, n in plain}
