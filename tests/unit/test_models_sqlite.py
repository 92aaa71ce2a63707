"""The models on SQLite, built by the migrations (not create_all), as the embedded default runs."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from labinterp.db import database_is_current, make_engine, make_session_factory, upgrade_database
from labinterp.models import (
    ApiToken,
    AuditEvent,
    Base,
    Clinic,
    Interpretation,
    InterpretationCode,
    Panel,
    PanelContext,
    PanelRevision,
    Patient,
    Result,
)

COLLECTED = dt.datetime(2026, 11, 20, 8, 30, tzinfo=dt.UTC)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'instance' / 'labinterp.db'}"
    upgrade_database(url)
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with make_session_factory(engine)() as session:
        yield session


def add_panel(session: Session, clinic: Clinic, accession: str = "LAB-1") -> Panel:
    patient = Patient(
        clinic=clinic, external_id="P-0042", sex="female", birth_date=dt.date(1984, 3, 9)
    )
    panel = Panel(
        clinic=clinic,
        patient=patient,
        accession=accession,
        status="queued",
        current_revision=1,
        collected_at=COLLECTED,
    )
    session.add(panel)
    session.flush()
    return panel


def add_revision(session: Session, panel: Panel) -> PanelRevision:
    revision = PanelRevision(
        panel=panel,
        revision=1,
        content_hash="0" * 64,
        collected_at=COLLECTED,
        sex="female",
        birth_date=dt.date(1984, 3, 9),
        hemolyzed=False,
        specimen_type="serum",
        ruleset="2026.1",
        body={"accession": panel.accession, "results": [{"value": Decimal("1.10")}]},
        created_by="token:li_abc",
    )
    revision.results = [
        Result(
            position=0,
            analyte="magnesium",
            reported_value="1.10",
            reported_unit="mg/dL",
            value=Decimal("0.452571"),
            unit="mmol/L",
        ),
        Result(
            position=1,
            analyte="potassium",
            loinc="2823-3",
            reported_value="3.2",
            reported_unit="mmol/L",
            value=Decimal("3.2"),
            unit="mmol/L",
            lab_low="3.5",
            lab_high="5.1",
        ),
    ]
    revision.context = PanelContext(
        twitching={"sites": ["toes"], "duration_days": 21, "frequency": "daily"},
        symptoms=["muscle_weakness"],
        factors=["caffeine"],
        medications=[],
        notes="verbatim",
    )
    session.add(revision)
    session.flush()
    return revision


def interpretation_of(revision: PanelRevision, ruleset: str = "2026.1") -> Interpretation:
    return Interpretation(
        panel_id=revision.panel_id,
        revision_id=revision.id,
        revision=revision.revision,
        ruleset=ruleset,
        status="flagged",
        priority="urgent",
        body={
            "status": "flagged",
            "findings": [{"code": "hypomagnesemia", "value": Decimal("0.45")}],
        },
    )


def test_migrations_build_exactly_the_models_schema(engine: Engine) -> None:
    """Autogenerate finds nothing to do after `upgrade head`: migrations and models agree."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_the_upgraded_database_is_current_and_upgrading_again_is_a_no_op(database_url: str) -> None:
    assert database_is_current(database_url)
    upgrade_database(database_url)
    assert database_is_current(database_url)


def test_a_database_that_does_not_exist_is_not_current(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "labinterp.db"
    assert not database_is_current(f"sqlite:///{missing}")
    assert not missing.exists()


def test_sqlite_connections_enforce_foreign_keys_and_use_wal(engine: Engine) -> None:
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL: durable 202


def test_a_panel_with_its_revision_results_context_and_interpretation_reads_back(
    engine: Engine, session: Session
) -> None:
    clinic = Clinic(name="North")
    panel = add_panel(session, clinic)
    revision = add_revision(session, panel)
    interpretation = interpretation_of(revision)
    session.add(interpretation)
    session.flush()
    session.add(
        InterpretationCode(
            interpretation_id=interpretation.id, code="hypomagnesemia", kind="finding"
        )
    )
    session.commit()
    panel_id = panel.id

    with make_session_factory(engine)() as fresh:
        stored = fresh.get(Panel, panel_id)
        assert stored is not None
        assert stored.clinic.name == "North"
        assert stored.patient.external_id == "P-0042"
        assert stored.collected_at == COLLECTED and stored.collected_at.tzinfo is not None
        assert [r.revision for r in stored.revisions] == [1]
        first = stored.revisions[0]
        assert [r.analyte for r in first.results] == ["magnesium", "potassium"]
        assert first.results[0].reported_value == "1.10"  # verbatim
        assert first.results[0].value == Decimal("0.452571")
        assert first.results[1].lab_low == "3.5"
        assert first.results[0].id < first.results[1].id  # autoincrementing on SQLite too
        assert first.context is not None and first.context.twitching == {
            "sites": ["toes"],
            "duration_days": 21,
            "frequency": "daily",
        }
        assert first.body["results"][0]["value"] == Decimal("1.10")  # JSON keeps exact decimals
        newest = stored.interpretations[0]
        assert (newest.ruleset, newest.status, newest.priority) == ("2026.1", "flagged", "urgent")
        assert newest.body["findings"][0]["value"] == Decimal("0.45")
        assert [(c.code, c.kind) for c in newest.codes] == [("hypomagnesemia", "finding")]
        flagged = fresh.scalars(
            select(Panel.accession)
            .join(Interpretation, Interpretation.panel_id == Panel.id)
            .join(InterpretationCode)
            .where(InterpretationCode.code == "hypomagnesemia")
        ).all()
        assert flagged == ["LAB-1"]


def test_an_aware_time_in_another_zone_is_stored_as_the_same_instant(session: Session) -> None:
    """SQLite keeps no offset: 09:30+01:00 must come back as 08:30 UTC, not 09:30 UTC."""
    clinic = Clinic(name="Paris")
    panel = add_panel(session, clinic)
    panel.collected_at = dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    session.commit()
    session.expire_all()
    assert panel.collected_at == COLLECTED
    assert panel.collected_at.utcoffset() == dt.timedelta(0)
    later = session.scalars(select(Panel).where(Panel.collected_at > COLLECTED)).all()
    assert later == []


def test_a_second_interpretation_of_one_revision_with_one_ruleset_is_refused(
    session: Session,
) -> None:
    """(revision_id, ruleset) is the worker's idempotency key: a duplicate task stores nothing."""
    revision = add_revision(session, add_panel(session, Clinic(name="North")))
    session.add(interpretation_of(revision))
    session.commit()
    session.add(interpretation_of(revision))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()
    session.add(interpretation_of(revision, ruleset="2026.2"))  # another ruleset is fine
    session.commit()


def test_an_accession_is_unique_within_a_clinic_but_not_across_clinics(session: Session) -> None:
    north, south = Clinic(name="North"), Clinic(name="South")
    add_panel(session, north, "LAB-7")
    add_panel(session, south, "LAB-7")
    session.commit()
    patient = session.scalars(select(Patient).where(Patient.clinic_id == north.id)).one()
    session.add(
        Panel(
            clinic=north,
            patient=patient,
            accession="LAB-7",
            status="queued",
            current_revision=1,
            collected_at=COLLECTED,
        )
    )
    with pytest.raises(IntegrityError):
        session.commit()


def test_a_panel_of_a_clinic_that_does_not_exist_is_refused(session: Session) -> None:
    """Foreign keys are enforced on SQLite (they are off unless switched on)."""
    session.add(Patient(clinic_id=uuid.uuid4(), external_id="P-1", sex="unknown"))
    with pytest.raises(IntegrityError):
        session.commit()


def test_a_token_acts_for_its_clinics(session: Session) -> None:
    north, south = Clinic(name="North"), Clinic(name="South")
    token = ApiToken(
        name="clinician token",
        token_hash="a" * 64,
        prefix="li_abcdefghi",
        role="clinician",
        clinics=[south, north],
    )
    session.add(token)
    session.commit()
    session.expire_all()
    assert [c.name for c in token.clinics] == ["North", "South"]
    assert token.revoked_at is None and token.created_at.tzinfo is not None


def test_audit_events_get_increasing_ids_and_keep_null_detail_as_sql_null(session: Session) -> None:
    session.add_all(
        [
            AuditEvent(actor="token:li_x", role="clinic", action="panel.read"),
            AuditEvent(actor="token:li_x", role="clinic", action="panel.read", detail={"n": 1}),
        ]
    )
    session.commit()
    ids = session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)).all()
    assert len(ids) == 2 and ids[0] < ids[1]
    nulls = session.execute(text("SELECT count(*) FROM audit_events WHERE detail IS NULL"))
    assert nulls.scalar() == 1
