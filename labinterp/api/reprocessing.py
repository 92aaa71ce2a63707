"""Re-processing jobs: interpret stored panels again under another ruleset (admin)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from flask.views import MethodView

from labinterp.api.auth import current_actor, roles
from labinterp.api.panels import page_body
from labinterp.api.parsing import Blueprint
from labinterp.api.session import db, runtime
from labinterp.schemas.common import PageQuery
from labinterp.schemas.reprocessing import JobIn, JobOut, JobPageOut
from labinterp.services import reprocessing as service

blp = Blueprint(
    "reprocessing",
    __name__,
    url_prefix="/api/v1",
    description="Re-processing jobs: stored panels interpreted again under another ruleset, "
    "or a dry run that counts what would change.",
)


@blp.route("/reprocessing-jobs")
class ReprocessingJobs(MethodView):
    @roles("admin")
    @blp.arguments(JobIn)
    @blp.response(202, JobOut, description="The job, queued")
    def post(self, body: dict[str, Any]) -> Any:
        """Start a re-processing job

        Interprets every interpreted panel that matches `filter` again under `ruleset`, in
        chunks, each panel's new interpretation added beside the earlier ones and made its
        newest (a panel whose findings changed goes back to the review queue). With
        `dry_run`, writes nothing and counts what would change. 409 while another job that
        may touch the same panels is queued or running (two dry runs may overlap).
        """
        rt = runtime()
        wanted = body.get("filter") or {}
        job = service.start_job(
            db(),
            rt.dispatcher,
            current_actor(),
            rt.rulesets,
            service.JobRequest(
                ruleset=body["ruleset"],
                dry_run=body["dry_run"],
                clinic=wanted.get("clinic"),
                collected_from=wanted.get("collected_from"),
                collected_to=wanted.get("collected_to"),
            ),
            dt.datetime.now(dt.UTC),
        )
        return job, 202, {"Location": f"/api/v1/reprocessing-jobs/{job.id}"}

    @roles("admin")
    @blp.arguments(PageQuery, location="query")
    @blp.response(200, JobPageOut)
    def get(self, query: dict[str, Any]) -> Any:
        """Every re-processing job, newest first"""
        page = service.list_jobs(db(), query["page"], query["per_page"])
        return page_body(page.items, page.total, query)


@blp.route("/reprocessing-jobs/<uuid:job_id>")
class ReprocessingJob(MethodView):
    @roles("admin")
    @blp.response(200, JobOut)
    def get(self, job_id: uuid.UUID) -> Any:
        """A re-processing job: its status, progress and summary of what changed"""
        return service.get_job(db(), job_id)


@blp.route("/reprocessing-jobs/<uuid:job_id>/cancel")
class CancelReprocessingJob(MethodView):
    @roles("admin")
    @blp.response(200, JobOut, description="The job, cancelled")
    def post(self, job_id: uuid.UUID) -> Any:
        """Cancel a queued or running job

        No chunk records anything once this answers (one being worked rolls back); what
        earlier chunks wrote stays. 409 when the job has already finished.
        """
        return service.cancel_job(db(), current_actor(), job_id, dt.datetime.now(dt.UTC))
