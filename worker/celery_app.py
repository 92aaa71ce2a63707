"""The Celery application: configured from the environment, connects to nothing at import."""

from __future__ import annotations

from pathlib import Path

from celery import Celery

from labinterp.config import Settings, load_settings
from labinterp.embedded_broker import embedded_broker_options

INTERPRET_TASK = "labinterp.interpret_panel"
SWEEP_TASK = "labinterp.sweep_queued_panels"
QUEUE = "labinterp"


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or load_settings()
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        folder = settings.broker_transport_options.get(key)
        if folder:  # the server-less broker is a folder every process shares
            Path(folder).mkdir(parents=True, exist_ok=True)
    app = Celery("labinterp", broker=settings.broker_url, include=["worker.tasks"])
    app.conf.update(
        broker_transport_options=settings.broker_transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # a task is acknowledged only after it ran: safe because interpret_panel is idempotent
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=4,
        worker_hijack_root_logger=False,
        beat_schedule={
            "sweep-queued-panels": {"task": SWEEP_TASK, "schedule": 30.0},
        },
        beat_schedule_filename=str(settings.instance_path / "celerybeat-schedule"),
    )
    # on filesystem:// our transport, whose message files appear whole (issue 5)
    app.conf.update(embedded_broker_options(settings))
    return app


celery_app = make_celery()
