"""Interoperability: what each revision was received as, the sender's flags, clinic time
zones and clinic code tables.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-03

* ``panel_revisions.source_format`` (``json``, ``fhir``, ``hl7v2``; NULL for revisions stored
  before this migration, all of them JSON), ``panel_revisions.source_document`` (the document
  exactly as received, for audit and re-processing) and ``panel_revisions.not_interpreted``
  (what the document held that was kept but not judged: ``[{"path", "code", "display",
  "reason"}]``).
* ``results.sender_flag``: the sender's own flag (``L``, ``HH``, ``A`` …), verbatim, beside ours.
* ``clinics.time_zone``: the IANA zone a date-time sent without a UTC offset is read in
  (HL7 v2 usually sends local times); ``UTC`` for every existing clinic.
* ``clinic_codes``: a clinic's local result codes (HL7 v2 OBX-3 without LOINC) and the
  analyte each stands for.

Written on a branch beside another "0005"; the chain is set when both are merged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def upgrade() -> None:
    with op.batch_alter_table("panel_revisions") as batch:
        batch.add_column(sa.Column("source_format", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("source_document", sa.Text(), nullable=True))
        batch.add_column(sa.Column("not_interpreted", _json(), nullable=True))
    with op.batch_alter_table("results") as batch:
        batch.add_column(sa.Column("sender_flag", sa.String(length=20), nullable=True))
    with op.batch_alter_table("clinics") as batch:
        batch.add_column(
            sa.Column("time_zone", sa.String(length=64), server_default="UTC", nullable=False)
        )
    op.create_table(
        "clinic_codes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("clinic_id", sa.Uuid(), nullable=False),
        sa.Column("system", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=60), nullable=False),
        sa.Column("analyte", sa.String(length=60), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinics.id"], name=op.f("fk_clinic_codes_clinic_id_clinics")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinic_codes")),
        sa.UniqueConstraint(
            "clinic_id", "system", "code", name=op.f("uq_clinic_codes_clinic_id_system_code")
        ),
    )


def downgrade() -> None:
    op.drop_table("clinic_codes")
    with op.batch_alter_table("clinics") as batch:
        batch.drop_column("time_zone")
    with op.batch_alter_table("results") as batch:
        batch.drop_column("sender_flag")
    with op.batch_alter_table("panel_revisions") as batch:
        batch.drop_column("not_interpreted")
        batch.drop_column("source_document")
        batch.drop_column("source_format")
