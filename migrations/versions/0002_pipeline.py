"""The pipeline: the ruleset fixed at acceptance, attempts and failure codes, token expiry,
and indexes that match the queries.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

* ``panel_revisions.ruleset``: the ruleset that accepted the revision (and interprets it).
  Earlier revisions get the ruleset of their first interpretation, else the active one.
* ``panel_revisions.collected_utc_offset``: minutes east of UTC the collection time was sent
  with, read once from the stored request here instead of on every interpretation.
* ``panels.attempts`` and ``panels.failure_code``; ``api_tokens.expires_at``.
* Indexes: a clinic's panels by collection time, patients by their clinic's id alone, the
  panels not yet handed to the broker (partial: what a worker's relay publishes); the
  indexes no query used (``panels.status``, ``panels.updated_at``, ``interpretations.panel_id``,
  each the prefix of another or unread) are dropped: every index costs every insert.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_RULESET = "2026.1"


def _offset_minutes(body: object) -> int:
    """The UTC offset of the stored request's collected_at, in minutes (0 when absent)."""
    if isinstance(body, str):
        body = json.loads(body)
    sent = body.get("collected_at") if isinstance(body, dict) else None
    if not isinstance(sent, str):
        return 0
    try:
        moment = dt.datetime.fromisoformat(sent.replace("Z", "+00:00"))
    except ValueError:
        return 0
    offset = moment.utcoffset()
    return 0 if offset is None else int(offset.total_seconds() // 60)


def upgrade() -> None:
    with op.batch_alter_table("panel_revisions") as batch:
        batch.add_column(sa.Column("ruleset", sa.String(length=20), nullable=True))
        batch.add_column(
            sa.Column("collected_utc_offset", sa.Integer(), server_default="0", nullable=False)
        )
    op.execute(
        sa.text(
            "UPDATE panel_revisions SET ruleset = COALESCE("
            "(SELECT i.ruleset FROM interpretations i WHERE i.revision_id = panel_revisions.id "
            "ORDER BY i.created_at LIMIT 1), "
            "(SELECT s.value FROM settings s WHERE s.key = 'active_ruleset'), "
            f"'{DEFAULT_RULESET}')"
        )
    )
    connection = op.get_bind()
    revisions = sa.table(
        "panel_revisions",
        sa.column("id", sa.Uuid()),
        sa.column("body", sa.JSON()),
        sa.column("collected_utc_offset", sa.Integer()),
    )
    offsets = [
        {"rid": row.id, "offset": _offset_minutes(row.body)}
        for row in connection.execute(sa.select(revisions.c.id, revisions.c.body))
    ]
    changed = [o for o in offsets if o["offset"] != 0]
    if changed:
        connection.execute(
            revisions.update()
            .where(revisions.c.id == sa.bindparam("rid"))
            .values(collected_utc_offset=sa.bindparam("offset")),
            changed,
        )
    with op.batch_alter_table("panel_revisions") as batch:
        batch.alter_column("ruleset", existing_type=sa.String(length=20), nullable=False)

    with op.batch_alter_table("panels") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("failure_code", sa.String(length=40), nullable=True))
    op.drop_index("ix_panels_status", table_name="panels")
    op.drop_index("ix_panels_updated_at", table_name="panels")
    op.create_index(
        op.f("ix_panels_clinic_id_collected_at"), "panels", ["clinic_id", "collected_at"]
    )
    op.create_index(op.f("ix_patients_external_id"), "patients", ["external_id"])
    unpublished = sa.text("status = 'queued' AND enqueued_at IS NULL")
    op.create_index(
        "ix_panels_unpublished",
        "panels",
        ["updated_at"],
        postgresql_where=unpublished,
        sqlite_where=unpublished,
    )
    op.drop_index("ix_interpretations_panel_id", table_name="interpretations")

    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
    op.create_index("ix_interpretations_panel_id", "interpretations", ["panel_id"])
    op.drop_index("ix_panels_unpublished", table_name="panels")
    op.drop_index(op.f("ix_patients_external_id"), table_name="patients")
    op.drop_index(op.f("ix_panels_clinic_id_collected_at"), table_name="panels")
    op.create_index("ix_panels_updated_at", "panels", ["updated_at"])
    op.create_index("ix_panels_status", "panels", ["status"])
    with op.batch_alter_table("panels") as batch:
        batch.drop_column("failure_code")
        batch.drop_column("attempts")
    with op.batch_alter_table("panel_revisions") as batch:
        batch.drop_column("collected_utc_offset")
        batch.drop_column("ruleset")
