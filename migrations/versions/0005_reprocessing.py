"""Re-processing jobs: their chunks, and interpretations that a job writes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

* ``reprocessing_chunks``: the panels of a job in id ranges (keyset: from ``first_id`` to
  ``next_id``), each done in one transaction that sets its ``done_at``; ``attempts``: how many
  times a worker took it up (a chunk that keeps failing fails its job).
* ``reprocessing_jobs``: ``error`` (why a job failed), ``dispatched_at`` (the sweeper's clock),
  an index on (status, created_at).
* ``interpretations.job_id``: the job that wrote it. The worker's key, one interpretation per
  (revision, ruleset), holds for the worker's own rows only (a job re-interprets a revision
  under a ruleset it may have been interpreted with already); a job's key is one per
  (job, panel). Both are partial unique indexes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WORKERS = sa.text("job_id IS NULL")
_JOBS = sa.text("job_id IS NOT NULL")


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "reprocessing_chunks",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("first_id", sa.Uuid(), nullable=False),
        sa.Column("next_id", sa.Uuid(), nullable=True),
        sa.Column("panels", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("dispatched_at", tz, nullable=True),
        sa.Column("done_at", tz, nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["reprocessing_jobs.id"],
            name=op.f("fk_reprocessing_chunks_job_id_reprocessing_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "seq", name=op.f("pk_reprocessing_chunks")),
    )
    with op.batch_alter_table("reprocessing_jobs") as batch:
        batch.add_column(sa.Column("error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("dispatched_at", tz, nullable=True))
    op.create_index(
        "ix_reprocessing_jobs_status_created_at", "reprocessing_jobs", ["status", "created_at"]
    )
    with op.batch_alter_table("interpretations") as batch:
        batch.add_column(sa.Column("job_id", sa.Uuid(), nullable=True))
        batch.drop_constraint("uq_interpretations_revision_id_ruleset", type_="unique")
    op.create_index(
        "uq_interpretations_revision_id_ruleset",
        "interpretations",
        ["revision_id", "ruleset"],
        unique=True,
        postgresql_where=_WORKERS,
        sqlite_where=_WORKERS,
    )
    op.create_index(
        "uq_interpretations_job_id_panel_id",
        "interpretations",
        ["job_id", "panel_id"],
        unique=True,
        postgresql_where=_JOBS,
        sqlite_where=_JOBS,
    )


def downgrade() -> None:
    # a job's rows would break the worker's key: they go (the jobs' history goes with them)
    op.execute("DELETE FROM interpretations WHERE job_id IS NOT NULL")
    op.drop_index("uq_interpretations_job_id_panel_id", table_name="interpretations")
    op.drop_index("uq_interpretations_revision_id_ruleset", table_name="interpretations")
    with op.batch_alter_table("interpretations") as batch:
        batch.drop_column("job_id")
        batch.create_unique_constraint(
            "uq_interpretations_revision_id_ruleset", ["revision_id", "ruleset"]
        )
    op.drop_index("ix_reprocessing_jobs_status_created_at", table_name="reprocessing_jobs")
    with op.batch_alter_table("reprocessing_jobs") as batch:
        batch.drop_column("dispatched_at")
        batch.drop_column("error")
    op.drop_table("reprocessing_chunks")
