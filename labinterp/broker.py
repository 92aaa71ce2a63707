"""The Celery application, built from settings by a factory: nothing connects or reads the
environment at import time.

The API publishes tasks by name; the worker process registers them by importing
``worker.tasks`` (named in ``include``, so this package never imports ``worker``).

Queues: interpretation tasks go to ``labinterp``; the sweeper has ``labinterp.sweep`` to itself,
so a backlog of thousands of panels never stands in front of the task that rescues lost ones;
critical-value alerts have ``labinterp.alerts``, so they never wait behind a backlog either;
re-processing jobs have ``labinterp.reprocess``, so a job's thousands of chunks never stand
in front of a live panel (a worker takes from its queues in turn: a live panel waits at most
for one chunk per worker process).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from celery import Celery

from labinterp.config import Settings
from labinterp.embedded_broker import embedded_broker_options

INTERPRET_TASK = "labinterp.interpret_panels"  # args: [[panel id, ...]]
LEGACY_INTERPRET_TASK = "labinterp.interpret_panel"  # args: [panel id]; messages of 0.1
SWEEP_TASK = "labinterp.sweep_queued_panels"
ALERT_TASK = "labinterp.send_alert"  # args: [alert id]
REPROCESS_PLAN_TASK = "labinterp.plan_reprocessing"  # args: [job id]
REPROCESS_CHUNK_TASK = "labinterp.reprocess_chunk"  # args: [job id, chunk seq]
QUEUE = "labinterp"
SWEEP_QUEUE = "labinterp.sweep"
ALERT_QUEUE = "labinterp.alerts"
REPROCESS_QUEUE = "labinterp.reprocess"
WORKER_TASKS_MODULE = "worker.tasks"

# a message header: the earliest time (epoch seconds) at which any panel of the message was
# handed to the broker, read back by the sweeper (see :func:`oldest_waiting`)
ENQUEUED_AT_HEADER = "labinterp_enqueued_at"

# Per message (a batch of panels): the soft limit raises inside the task, which records the
# panel as failed with a reason; the hard limit kills the process (the message is redelivered
# and the panel's attempts grow). Both are far shorter than LABINTERP_SWEEP_AFTER, so the
# sweeper never mistakes a panel being worked on for a lost one.
SOFT_TIME_LIMIT = 20
HARD_TIME_LIMIT = 30


def make_celery(settings: Settings) -> Celery:
    """A Celery app for ``settings``: publishing from the API, consuming in ``labinterp
    worker``. Creates the embedded broker's folders (cheap and idempotent)."""
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        folder = settings.broker_transport_options.get(key)
        if folder:  # the server-less broker is a folder every process shares
            Path(folder).mkdir(parents=True, exist_ok=True)
    app = Celery(
        "labinterp",
        broker=settings.broker_url,
        include=[WORKER_TASKS_MODULE],
        set_as_current=False,
    )
    app.conf.update(
        broker_transport_options=settings.broker_transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        task_default_queue=QUEUE,
        task_routes={
            SWEEP_TASK: {"queue": SWEEP_QUEUE},
            ALERT_TASK: {"queue": ALERT_QUEUE},
            REPROCESS_PLAN_TASK: {"queue": REPROCESS_QUEUE},
            REPROCESS_CHUNK_TASK: {"queue": REPROCESS_QUEUE},
        },
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # a message is acknowledged only after its task ran: safe because interpreting is
        # idempotent per (revision, ruleset); a worker killed mid-task leaves it to be redelivered
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_soft_time_limit=SOFT_TIME_LIMIT,
        task_time_limit=HARD_TIME_LIMIT,
        # one message at a time per process: a batch of panels is already many panels, and a
        # process never hoards messages another could take
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        beat_schedule={
            "sweep-queued-panels": {"task": SWEEP_TASK, "schedule": float(settings.sweep_every)},
        },
        beat_schedule_filename=str(settings.instance_path / "celerybeat-schedule"),
        labinterp_settings=settings,  # the worker's tasks build their runtime from these
    )
    # on filesystem:// our transport, whose message files appear whole (embedded_broker.py)
    app.conf.update(embedded_broker_options(settings))
    return app


# --- what is waiting in the broker ------------------------------------------------------------


def oldest_waiting(app: Celery, queue: str = QUEUE) -> float | None:
    """The :data:`ENQUEUED_AT_HEADER` of the oldest message waiting in ``queue`` (epoch
    seconds); ``None`` when the queue is empty. Raises when the broker cannot tell (an
    unsupported transport, an unreachable broker): the caller then knows nothing.

    Read without taking the message: Redis keeps a queue as a list (kombu pushes on the left
    and pops on the right), the embedded broker as files named in order of arrival.
    """
    url = app.conf.broker_url or ""
    if url.startswith(("redis://", "rediss://")):
        with app.connection_for_read() as conn:
            client = conn.default_channel.client
            raw = client.lindex(queue, -1)
        return None if raw is None else _stamp(json.loads(raw))
    if url.startswith("filesystem://"):
        folder = Path(app.conf.broker_transport_options["data_folder_in"])
        suffix = f".{queue}.msg"
        for name in sorted(os.listdir(folder)):
            if not name.endswith(suffix):
                continue
            with contextlib.suppress(FileNotFoundError, ValueError):  # taken meanwhile
                return _stamp(json.loads((folder / name).read_bytes()))
        return None
    raise NotImplementedError(f"cannot look into the queue of {url.split('://')[0]}")


def _stamp(message: dict[str, Any]) -> float:
    """A message's enqueue time: our header, else (a message of an older release) now, which
    makes every queued panel look as if it could still be waiting behind it."""
    stamp = (message.get("headers") or {}).get(ENQUEUED_AT_HEADER)
    return float(stamp) if isinstance(stamp, int | float) else time.time()
