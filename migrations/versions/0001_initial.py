"""Initial schema: tenancy, panels and their revisions, interpretations, reviews, operations.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Written for both SQLite and PostgreSQL: BIGINT ids are INTEGER on SQLite (so they are rowid
aliases and autoincrement), JSON is JSONB on PostgreSQL. Timestamps are plain
``DateTime(timezone=True)``; the models' ``UtcDateTime`` only converts values in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def _big_id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    # --- tenancy -----------------------------------------------------------------------------
    op.create_table(
        "clinics",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinics")),
        sa.UniqueConstraint("name", name=op.f("uq_clinics_name")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("disabled_at", _timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "user_clinics",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("clinic_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_clinics_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinics.id"], name=op.f("fk_user_clinics_clinic_id_clinics"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "clinic_id", name=op.f("pk_user_clinics")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=12), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("last_used_at", _timestamp(), nullable=True),
        sa.Column("revoked_at", _timestamp(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "api_token_clinics",
        sa.Column("token_id", sa.Uuid(), nullable=False),
        sa.Column("clinic_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["token_id"], ["api_tokens.id"], name=op.f("fk_api_token_clinics_token_id_api_tokens"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinics.id"], name=op.f("fk_api_token_clinics_clinic_id_clinics"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_id", "clinic_id", name=op.f("pk_api_token_clinics")),
    )

    # --- panels ------------------------------------------------------------------------------
    op.create_table(
        "patients",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("clinic_id", sa.Uuid(), nullable=False),
        sa.Column("external_id", sa.String(length=100), nullable=False),
        sa.Column("sex", sa.String(length=10), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("updated_at", _timestamp(), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinics.id"], name=op.f("fk_patients_clinic_id_clinics")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
        sa.UniqueConstraint(
            "clinic_id", "external_id", name=op.f("uq_patients_clinic_id_external_id")
        ),
    )
    op.create_table(
        "panels",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("clinic_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("accession", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("current_revision", sa.Integer(), nullable=False),
        sa.Column("collected_at", _timestamp(), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("updated_at", _timestamp(), nullable=False),
        sa.Column("enqueued_at", _timestamp(), nullable=True),
        sa.Column("failure", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinics.id"], name=op.f("fk_panels_clinic_id_clinics")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_panels_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panels")),
        sa.UniqueConstraint("clinic_id", "accession", name=op.f("uq_panels_clinic_id_accession")),
    )
    op.create_index(op.f("ix_panels_patient_id"), "panels", ["patient_id"])
    op.create_index(op.f("ix_panels_status"), "panels", ["status"])
    op.create_index(op.f("ix_panels_collected_at"), "panels", ["collected_at"])
    op.create_index(op.f("ix_panels_updated_at"), "panels", ["updated_at"])
    op.create_index(op.f("ix_panels_status_updated_at"), "panels", ["status", "updated_at"])
    op.create_table(
        "panel_revisions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("panel_id", sa.Uuid(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("collected_at", _timestamp(), nullable=False),
        sa.Column("sex", sa.String(length=10), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("age_years", sa.Integer(), nullable=True),
        sa.Column("hemolyzed", sa.Boolean(), nullable=False),
        sa.Column("specimen_type", sa.String(length=50), nullable=True),
        sa.Column("body", _json(), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["panel_id"], ["panels.id"], name=op.f("fk_panel_revisions_panel_id_panels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panel_revisions")),
        sa.UniqueConstraint(
            "panel_id", "revision", name=op.f("uq_panel_revisions_panel_id_revision")
        ),
    )
    op.create_table(
        "results",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("revision_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("analyte", sa.String(length=40), nullable=False),
        sa.Column("loinc", sa.String(length=20), nullable=True),
        sa.Column("reported_value", sa.String(length=40), nullable=False),
        sa.Column("reported_unit", sa.String(length=40), nullable=False),
        sa.Column("value", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("unit", sa.String(length=20), nullable=False),
        sa.Column("lab_low", sa.String(length=40), nullable=True),
        sa.Column("lab_high", sa.String(length=40), nullable=True),
        sa.Column("lab_range_text", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["revision_id"], ["panel_revisions.id"],
            name=op.f("fk_results_revision_id_panel_revisions"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_results")),
    )
    op.create_index(op.f("ix_results_revision_id"), "results", ["revision_id"])
    op.create_table(
        "panel_contexts",
        sa.Column("revision_id", sa.Uuid(), nullable=False),
        sa.Column("twitching", _json(), nullable=True),
        sa.Column("symptoms", _json(), nullable=False),
        sa.Column("factors", _json(), nullable=False),
        sa.Column("medications", _json(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["revision_id"], ["panel_revisions.id"],
            name=op.f("fk_panel_contexts_revision_id_panel_revisions"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("revision_id", name=op.f("pk_panel_contexts")),
    )

    # --- interpretations and reviews ---------------------------------------------------------
    op.create_table(
        "interpretations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("panel_id", sa.Uuid(), nullable=False),
        sa.Column("revision_id", sa.Uuid(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("ruleset", sa.String(length=20), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.String(length=20), nullable=False),
        sa.Column("body", _json(), nullable=False),
        sa.ForeignKeyConstraint(
            ["panel_id"], ["panels.id"], name=op.f("fk_interpretations_panel_id_panels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["revision_id"], ["panel_revisions.id"],
            name=op.f("fk_interpretations_revision_id_panel_revisions"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interpretations")),
        # the worker's idempotency key
        sa.UniqueConstraint(
            "revision_id", "ruleset", name=op.f("uq_interpretations_revision_id_ruleset")
        ),
    )
    op.create_index(op.f("ix_interpretations_panel_id"), "interpretations", ["panel_id"])
    op.create_index(
        op.f("ix_interpretations_panel_id_created_at"), "interpretations",
        ["panel_id", "created_at"],
    )
    op.create_table(
        "interpretation_codes",
        sa.Column("interpretation_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=60), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["interpretation_id"], ["interpretations.id"],
            name=op.f("fk_interpretation_codes_interpretation_id_interpretations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "interpretation_id", "code", "kind", name=op.f("pk_interpretation_codes")
        ),
    )
    op.create_index(op.f("ix_interpretation_codes_code"), "interpretation_codes", ["code"])
    op.create_table(
        "reviews",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("panel_id", sa.Uuid(), nullable=False),
        sa.Column("interpretation_id", sa.Uuid(), nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.ForeignKeyConstraint(
            ["panel_id"], ["panels.id"], name=op.f("fk_reviews_panel_id_panels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["interpretation_id"], ["interpretations.id"],
            name=op.f("fk_reviews_interpretation_id_interpretations"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    op.create_index(op.f("ix_reviews_panel_id"), "reviews", ["panel_id"])

    # --- operations --------------------------------------------------------------------------
    op.create_table(
        "audit_events",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("at", _timestamp(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("clinic_id", sa.Uuid(), nullable=True),
        sa.Column("panel_id", sa.Uuid(), nullable=True),
        sa.Column("detail", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_at"), "audit_events", ["at"])
    op.create_index(op.f("ix_audit_events_panel_id"), "audit_events", ["panel_id"])
    op.create_table(
        "settings",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_settings")),
    )
    op.create_table(
        "reprocessing_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("ruleset", sa.String(length=20), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("filter", _json(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("summary", _json(), nullable=True),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("started_at", _timestamp(), nullable=True),
        sa.Column("finished_at", _timestamp(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reprocessing_jobs")),
    )


def downgrade() -> None:
    # dropping a table drops its indexes; children before parents
    for table in (
        "reprocessing_jobs",
        "settings",
        "audit_events",
        "reviews",
        "interpretation_codes",
        "interpretations",
        "panel_contexts",
        "results",
        "panel_revisions",
        "panels",
        "patients",
        "api_token_clinics",
        "api_tokens",
        "user_clinics",
        "users",
        "clinics",
    ):
        op.drop_table(table)
