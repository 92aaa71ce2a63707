"""Clinician review: the review queue's state on each panel, users by email, critical-value
alerts, and an audit trail that says from where.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

* ``panels``: the current interpretation (``interpretation_id``) and what the queue orders
  and shows without a join: ``finding_status``, ``priority`` and its ``priority_rank``
  (0 critical, 1 urgent, 2 routine), the finding and red-flag codes; ``review_status``
  (``pending`` or ``reviewed``; NULL for panels outside the queue: normal, or not yet
  interpreted) and the significance digest it was reviewed at (``reviewed_signature``).
  Two partial indexes serve the queue in its order (rank, collection time, id): under
  (clinic, review status) for ``pending`` and ``reviewed``, under the clinic for ``all``.
  Existing panels take their newest interpretation's state, and are pending review.
* ``users.username`` becomes ``users.email``.
* ``reviews``: the reviewer's user, and the significance digest reviewed.
* ``audit_events``: the caller's address and token.
* ``clinic_webhooks``, ``alerts`` (one per critical interpretation, never two: unique
  interpretation) and ``alert_attempts`` (every try, with its outcome).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RANKS = {"critical": 0, "urgent": 1, "routine": 2}
_IN_QUEUE = sa.text("review_status IS NOT NULL")


def _json():  # type: ignore[no-untyped-def]
    from sqlalchemy.dialects.postgresql import JSONB

    return sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    with op.batch_alter_table("panels") as batch:
        batch.add_column(sa.Column("interpretation_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("finding_status", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("priority", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("priority_rank", sa.SmallInteger(), nullable=True))
        batch.add_column(sa.Column("finding_codes", _json(), nullable=True))
        batch.add_column(sa.Column("red_flag_codes", _json(), nullable=True))
        batch.add_column(sa.Column("review_status", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("reviewed_signature", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("reviewed_at", tz, nullable=True))
    op.create_index(
        "ix_panels_review_queue",
        "panels",
        ["clinic_id", "review_status", "priority_rank", "collected_at", "id"],
        postgresql_where=_IN_QUEUE,
        sqlite_where=_IN_QUEUE,
    )
    op.create_index(
        "ix_panels_review_all",
        "panels",
        ["clinic_id", "priority_rank", "collected_at", "id"],
        postgresql_where=_IN_QUEUE,
        sqlite_where=_IN_QUEUE,
    )
    _backfill_review_state()

    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_username", type_="unique")
        batch.alter_column("username", new_column_name="email", existing_type=sa.String(100),
                           type_=sa.String(254))
    with op.batch_alter_table("users") as batch:
        batch.create_unique_constraint("uq_users_email", ["email"])
    with op.batch_alter_table("reviews") as batch:
        batch.add_column(sa.Column("user_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("signature", sa.String(length=64), nullable=True))
        batch.create_foreign_key(
            "fk_reviews_user_id_users", "users", ["user_id"], ["id"], ondelete="SET NULL"
        )
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("address", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("token_id", sa.Uuid(), nullable=True))
    op.create_index("ix_audit_events_actor_at", "audit_events", ["actor", "at"])
    if op.get_bind().dialect.name == "postgresql":
        # a list read names its panels in detail.panel_ids: ?panel_id= finds those reads too
        op.execute(
            "CREATE INDEX ix_audit_events_panel_ids ON audit_events "
            "USING gin ((detail -> 'panel_ids'))"
        )

    op.create_table(
        "clinic_webhooks",
        sa.Column("clinic_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinics.id"], name=op.f("fk_clinic_webhooks_clinic_id_clinics"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("clinic_id", name=op.f("pk_clinic_webhooks")),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("interpretation_id", sa.Uuid(), nullable=False),
        sa.Column("panel_id", sa.Uuid(), nullable=False),
        sa.Column("clinic_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("next_attempt_at", tz, nullable=True),
        sa.Column("give_up_at", tz, nullable=False),
        sa.Column("delivered_at", tz, nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["interpretation_id"], ["interpretations.id"],
            name=op.f("fk_alerts_interpretation_id_interpretations"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["panel_id"], ["panels.id"], name=op.f("fk_alerts_panel_id_panels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinics.id"], name=op.f("fk_alerts_clinic_id_clinics")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("interpretation_id", name=op.f("uq_alerts_interpretation_id")),
    )
    op.create_index(op.f("ix_alerts_panel_id"), "alerts", ["panel_id"])
    waiting = sa.text("status = 'pending'")
    op.create_index(
        "ix_alerts_due", "alerts", ["next_attempt_at"],
        postgresql_where=waiting, sqlite_where=waiting,
    )
    op.create_table(
        "alert_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False,
                  autoincrement=True),
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("at", tz, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_alert_attempts_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_attempts")),
    )
    op.create_index(op.f("ix_alert_attempts_alert_id"), "alert_attempts", ["alert_id"])


def _backfill_review_state() -> None:
    """Each interpreted panel takes its newest interpretation's state; flagged and
    indeterminate ones are pending review (nothing was ever reviewed before this revision)."""
    connection = op.get_bind()
    interpretations = sa.table(
        "interpretations",
        sa.column("id", sa.Uuid()),
        sa.column("panel_id", sa.Uuid()),
        sa.column("status", sa.String()),
        sa.column("priority", sa.String()),
        sa.column("body", _json()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("revision", sa.Integer()),
    )
    later = interpretations.alias("later")
    newest = connection.execute(
        sa.select(
            interpretations.c.panel_id,
            interpretations.c.id,
            interpretations.c.status,
            interpretations.c.priority,
            interpretations.c.body,
        ).where(
            interpretations.c.id
            == sa.select(later.c.id)
            .where(later.c.panel_id == interpretations.c.panel_id)
            .order_by(later.c.created_at.desc(), later.c.revision.desc())
            .limit(1)
            .scalar_subquery()
        )
    ).all()
    panels = sa.table(
        "panels",
        sa.column("id", sa.Uuid()),
        sa.column("interpretation_id", sa.Uuid()),
        sa.column("finding_status", sa.String()),
        sa.column("priority", sa.String()),
        sa.column("priority_rank", sa.SmallInteger()),
        sa.column("finding_codes", _json()),
        sa.column("red_flag_codes", _json()),
        sa.column("review_status", sa.String()),
    )
    rows = []
    for panel_id, interpretation_id, status, priority, body in newest:
        if isinstance(body, str):
            body = json.loads(body)
        rows.append(
            {
                "pid": panel_id,
                "interpretation_id": interpretation_id,
                "finding_status": status,
                "priority": priority,
                "priority_rank": _RANKS.get(priority, 2),
                "finding_codes": sorted({f["code"] for f in body.get("findings", [])}),
                "red_flag_codes": sorted({f["code"] for f in body.get("red_flags", [])}),
                "review_status": None if status == "normal" else "pending",
            }
        )
    if rows:
        connection.execute(
            panels.update().where(panels.c.id == sa.bindparam("pid")),
            rows,
        )


def downgrade() -> None:
    op.drop_table("alert_attempts")
    op.drop_index("ix_alerts_due", table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("clinic_webhooks")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_audit_events_panel_ids")
    op.drop_index("ix_audit_events_actor_at", table_name="audit_events")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("token_id")
        batch.drop_column("address")
    with op.batch_alter_table("reviews") as batch:
        batch.drop_constraint("fk_reviews_user_id_users", type_="foreignkey")
        batch.drop_column("signature")
        batch.drop_column("user_id")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_email", type_="unique")
        batch.alter_column("email", new_column_name="username", existing_type=sa.String(254),
                           type_=sa.String(100))
    with op.batch_alter_table("users") as batch:
        batch.create_unique_constraint("uq_users_username", ["username"])
    op.drop_index("ix_panels_review_all", table_name="panels")
    op.drop_index("ix_panels_review_queue", table_name="panels")
    with op.batch_alter_table("panels") as batch:
        for column in (
            "reviewed_at", "reviewed_signature", "review_status", "red_flag_codes",
            "finding_codes", "priority_rank", "priority", "finding_status", "interpretation_id",
        ):
            batch.drop_column(column)
