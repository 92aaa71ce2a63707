"""The `labinterp` command."""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn, cast

import click
from sqlalchemy.exc import OperationalError

from labinterp.config import ConfigError, Settings
from labinterp.config import load_settings as _load_settings

if TYPE_CHECKING:
    from celery import Celery
    from sqlalchemy.orm import Session

    from labinterp.services.audit import Actor
    from labinterp.services.panels import ClinicRef


def _failure_codes() -> list[Any]:
    from labinterp.models import FailureCode

    return list(FailureCode)


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def load_settings() -> Settings:
    """The settings from the environment, or a one-line error naming the bad variable."""
    try:
        return _load_settings()
    except ConfigError as exc:
        _fail(str(exc))


def _check_rulesets(settings: Settings) -> None:
    """Refuse to start on a malformed ruleset (the message names file and line) or on a
    LABINTERP_RULESET that is not among them: better than failing on the first panel."""
    from labinterp.domain.ruleset import RulesetError
    from labinterp.rulesets import load_rulesets

    try:
        versions = load_rulesets(settings.rulesets_dir)
    except RulesetError as exc:
        _fail(f"ruleset: {exc}")
    if settings.default_ruleset not in versions:
        _fail(
            f"LABINTERP_RULESET={settings.default_ruleset} is not among the rulesets "
            f"({', '.join(sorted(versions)) or 'none'})"
        )


def _require_schema(settings: Settings) -> None:
    """The embedded default (SQLite) sets up its own schema; any other database must have
    been upgraded (`labinterp db upgrade`). Either way, a one-line error rather than a
    traceback when the database cannot be reached or the migrations cannot be found."""
    from labinterp.db import database_is_current, upgrade_database

    try:
        if settings.is_sqlite:
            settings.instance_path.mkdir(parents=True, exist_ok=True)
            upgrade_database(settings.database_url)
            return
        current = database_is_current(settings.database_url)
    except OperationalError as exc:
        _fail(f"cannot reach the database {_shown(settings.database_url)}: {exc.orig}")
    except FileNotFoundError as exc:
        _fail(_no_migrations(exc))
    if not current:
        _fail("the database schema is not current: run `labinterp db upgrade` first")


def _no_migrations(exc: FileNotFoundError) -> str:
    return (
        f"{exc}; run labinterp from its source folder, or install it (pip install .), which "
        "puts migrations/ and reference_ranges/ under share/labinterp"
    )


@contextlib.contextmanager
def _session() -> Iterator[Session]:
    """A session on a database whose schema is current (see `_require_schema`)."""
    from labinterp.runtime import get_runtime

    settings = load_settings()
    _require_schema(settings)
    try:
        with get_runtime().session_factory() as session:
            yield session
    except OperationalError as exc:
        _fail(f"cannot reach the database {_shown(settings.database_url)}: {exc.orig}")


def _clinic_ref(clinic_name: str) -> ClinicRef:
    """The clinic named on the command line, or exit saying how to make it."""
    from labinterp.services.accounts import find_clinic
    from labinterp.services.errors import NotFound
    from labinterp.services.panels import ClinicRef

    with _session() as session:
        try:
            found = find_clinic(session, clinic_name)
        except NotFound:
            _fail(f"no clinic {clinic_name!r}: create it with `labinterp clinics create NAME`")
        return ClinicRef(found.id, found.name)


@click.group()
@click.version_option(package_name="labinterp")
def main() -> None:
    """labinterp: lab-result interpretation service (API, worker, operations)."""


# --- serving -------------------------------------------------------------------------------


@main.command()
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--workers", default=2, show_default=True, type=int, help="API processes")
@click.option("--threads", default=4, show_default=True, type=int, help="threads per API process")
@click.option("--no-worker", is_flag=True, help="do not start a Celery worker beside the API")
def serve(port: int, host: str, workers: int, threads: int, no_worker: bool) -> None:
    """Run the API. With no configuration it also runs a worker, on SQLite and a server-less
    broker under ./instance, so a posted panel is interpreted with nothing else started."""
    # one key for every API process gunicorn starts: a session and its CSRF token signed by
    # one process must verify in whichever takes the next request. Never written to disk:
    # without LABINTERP_SECRET_KEY, stopping serve signs everyone out.
    os.environ.setdefault("LABINTERP_SECRET_KEY", secrets.token_hex(32))
    settings = load_settings()
    _check_rulesets(settings)
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    _require_schema(settings)
    _share_metrics(settings, wipe=True)
    if settings.embedded_broker:
        # before the API processes and the worker start: none of them declares it first
        _declare_embedded_queues(settings)
    worker: _EmbeddedWorker | None = None
    if not no_worker:
        worker = _EmbeddedWorker(
            [
                sys.executable,
                "-m",
                "labinterp",
                "worker",
                "--beat",
                "--concurrency",
                "1",
                "--pool",
                "solo" if settings.embedded_broker else "prefork",
            ]
        )
        worker.start()
    try:
        _run_gunicorn(host, port, workers, threads, settings)
    finally:
        if worker is not None:
            worker.stop()


class _EmbeddedWorker:
    """The worker `serve` runs beside the API: started again when it dies (a crash, the OOM
    killer), so panels never wait for a worker that is gone; stopped when `serve` stops."""

    RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)  # seconds, longer while it keeps dying
    STABLE_AFTER = 60.0  # a worker that ran this long starts the delays over

    def __init__(self, argv: list[str]) -> None:
        self._argv = argv
        self._owner = os.getpid()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._started = 0.0
        self._watcher = threading.Thread(target=self._watch, name="worker-watch", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._watcher.start()

    def _spawn(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            # its own process group: stopping the group also stops the beat process it forks
            self._process = subprocess.Popen(  # noqa: S603 - our own worker: fixed argv, no shell
                self._argv,
                start_new_session=True,
                # it stops by itself should serve die without stopping it (SIGKILL)
                env={**os.environ, _PARENT_ENV: str(self._owner)},
            )
            self._started = time.monotonic()
            pid = self._process.pid
        click.echo(f"started worker process {pid}", err=True)

    def _watch(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            process = self._process
            assert process is not None  # noqa: S101 - _spawn ran before the watcher started
            process.wait()  # the exit code may be lost: gunicorn's arbiter reaps any child
            if self._stopping.is_set():
                return
            _signal_group(process.pid, signal.SIGKILL)  # what it left behind (its beat)
            ran = time.monotonic() - self._started
            failures = 1 if ran >= self.STABLE_AFTER else failures + 1
            delay = self.RESTART_DELAYS[min(failures, len(self.RESTART_DELAYS)) - 1]
            click.echo(
                f"worker process {process.pid} exited after {ran:.0f} s; "
                f"starting another in {delay:g} s",
                err=True,
            )
            if self._stopping.wait(delay):
                return
            self._spawn()

    def stop(self) -> None:
        if os.getpid() != self._owner:
            # an API process gunicorn forked from `serve` unwinds through serve's `finally`
            # when it exits: the worker is not its to stop
            return
        self._stopping.set()
        with self._lock:
            process = self._process
        if process is None:
            return
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        _signal_group(process.pid, signal.SIGKILL)  # a beat process that outlived it


_PARENT_ENV = "LABINTERP_SERVE_PID"


def _exit_with_parent(parent: int, interval: float = 1.0) -> None:
    """Stop this worker (a warm shutdown) once ``parent`` is no longer its parent: the
    `serve` that started it was killed before it could stop it. Celery would otherwise keep
    consuming beside the worker of the next `serve`."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        click.echo(f"labinterp serve (pid {parent}) is gone; stopping this worker", err=True)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exit-with-serve", daemon=True).start()


def _declare_embedded_queues(settings: Settings, app: Celery | None = None) -> None:
    """Declare the task queue and its binding on the embedded broker (``app``'s, or one made
    from ``settings``), or a one-line error."""
    from kombu.exceptions import ChannelError

    from labinterp.broker import make_celery
    from labinterp.embedded_broker import declare_embedded_queues

    try:
        declare_embedded_queues(app or make_celery(settings))
    except (ChannelError, OSError) as exc:
        _fail(f"cannot set up the embedded broker under {settings.instance_path / 'broker'}: {exc}")


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _api_process_exited(_server: Any, worker: Any) -> None:
    from labinterp.metrics import process_exited

    process_exited(worker.pid)


def _run_gunicorn(host: str, port: int, workers: int, threads: int, settings: Settings) -> None:
    from gunicorn.app.base import BaseApplication

    from labinterp.accesslog import ACCESS_LOG_FORMAT, AccessLogger

    # gunicorn >= 25.1 opens a control socket, by default one per user ($HOME/.gunicorn): each
    # instance keeps its own, or a second `labinterp serve` takes over (and then removes) it
    control_socket = settings.instance_path / "gunicorn.ctl"

    class _Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("accesslog", "-")
            # no query strings, no patient ids in paths (accesslog.py)
            self.cfg.set("logger_class", AccessLogger)
            self.cfg.set("access_log_format", ACCESS_LOG_FORMAT)
            self.cfg.set("graceful_timeout", 10)
            self.cfg.set("child_exit", _api_process_exited)
            if "control_socket" in self.cfg.settings:
                if len(str(control_socket)) < 100:  # AF_UNIX paths are short
                    self.cfg.set("control_socket", str(control_socket))
                else:
                    self.cfg.set("control_socket_disable", True)

        def load(self) -> Any:
            import gc

            from labinterp.app import create_app

            app = create_app()
            # the app's own objects (routes, schemas, the OpenAPI document, SQLAlchemy's
            # metadata: about 130,000) live as long as the process: out of the collector's
            # reach, each full collection no longer walks them (about 5 % of a POST's CPU)
            gc.freeze()
            return app

    click.echo(
        f"labinterp API on http://{host}:{port}  (docs: http://{host}:{port}/docs)", err=True
    )
    _Server().run()


@main.command()
@click.option(
    "--concurrency",
    default=None,
    type=int,
    help="worker processes (default: twice the cores: a task waits on the database about as "
    "long as it computes)",
)
@click.option("--pool", default=None, help="prefork, solo or threads")
@click.option("--beat", is_flag=True, help="also run the periodic sweeper (run one per deployment)")
@click.option("--loglevel", default="INFO", show_default=True)
@click.option(
    "-n",
    "--hostname",
    default=None,
    help="node name (default: labinterp-PID@HOST, unique for each worker on a machine)",
)
def worker(
    concurrency: int | None, pool: str | None, beat: bool, loglevel: str, hostname: str | None
) -> None:
    """Run a Celery worker (as many as the load needs, on as many machines)."""
    settings = load_settings()
    _check_rulesets(settings)
    # a worker on a database it cannot use would say "ready" and fail every task
    _require_schema(settings)
    _share_metrics(settings, wipe=False)
    from labinterp.broker import ALERT_QUEUE, QUEUE, REPROCESS_QUEUE, SWEEP_QUEUE, make_celery

    # Celery's default, celery@HOST, is one name for every worker on a machine: they then
    # answer `celery inspect` as one node and warn of duplicate node names
    name = hostname or f"labinterp-{os.getpid()}@%h"
    # every worker takes alerts and reprocessing chunks too (each from its own queue: never
    # behind a backlog of panels, nor a backlog of chunks in front of live panels); the worker
    # that runs the beat also takes the sweeper's own queue
    queues = ",".join([QUEUE, ALERT_QUEUE, REPROCESS_QUEUE] + ([SWEEP_QUEUE] if beat else []))
    argv = ["worker", f"--loglevel={loglevel}", "-Q", queues, f"--hostname={name}"]
    if pool or settings.embedded_broker:
        argv.append(f"--pool={pool or 'solo'}")
    if concurrency or not (pool or settings.embedded_broker):
        argv.append(f"--concurrency={concurrency or 2 * (os.cpu_count() or 1)}")
    if beat:
        argv.append("--beat")
    parent = os.environ.pop(_PARENT_ENV, "")
    if parent.isdigit():
        _exit_with_parent(int(parent))
    celery_app = make_celery(settings)
    if settings.embedded_broker:
        _declare_embedded_queues(settings, celery_app)
    celery_app.worker_main(argv)


def _share_metrics(settings: Settings, *, wipe: bool) -> None:
    """Every process of this instance on this machine writes its metrics to one folder, which
    /metrics adds up (prometheus_client's multiprocess mode). Set before anything imports
    prometheus_client; emptied by `serve` when it starts (the samples of processes gone)."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str(settings.instance_path / "metrics")
    if wipe and os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.endswith(".db"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(folder, name))
    os.makedirs(folder, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder


# --- database and accounts -----------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every Alembic migration (safe to run again)."""
    from labinterp.db import upgrade_database

    settings = load_settings()
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    try:
        upgrade_database(settings.database_url)
    except OperationalError as exc:
        _fail(f"cannot reach the database {_shown(settings.database_url)}: {exc.orig}")
    except FileNotFoundError as exc:
        _fail(_no_migrations(exc))
    click.echo("database is at the newest schema")


@main.group()
def clinics() -> None:
    """Clinics (tenants)."""


@clinics.command("create")
@click.argument("name")
@click.option("--if-not-exists", is_flag=True, help="succeed quietly when it already exists")
@click.option(
    "--time-zone",
    default="UTC",
    show_default=True,
    help="IANA zone (e.g. Europe/Brussels) in which date-times sent without a UTC offset "
    "(usual in HL7 v2) are read",
)
def clinics_create(name: str, if_not_exists: bool, time_zone: str) -> None:
    """Create a clinic (a tenant); its tokens are made with `tokens create --clinic NAME`."""
    from labinterp.services.accounts import create_clinic
    from labinterp.services.errors import AlreadyExists, InvalidInput

    with _session() as session:
        try:
            clinic = create_clinic(session, name, actor=_operator(), time_zone=time_zone)
        except AlreadyExists as exc:
            if if_not_exists:
                click.echo(str(exc))
                return
            _fail(f"{exc} (use --if-not-exists to accept that)")
        except InvalidInput as exc:
            _fail(str(exc))
        click.echo(f"created clinic {clinic.name} ({clinic.id})")


@clinics.command("time-zone")
@click.argument("name")
@click.argument("zone")
def clinics_time_zone(name: str, zone: str) -> None:
    """Set the time zone in which a clinic's date-times without a UTC offset are read.

    ZONE is an IANA name such as Europe/Brussels (HL7 v2 usually sends local times)."""
    from labinterp.services.accounts import set_clinic_time_zone
    from labinterp.services.errors import InvalidInput, NotFound

    with _session() as session:
        try:
            clinic = set_clinic_time_zone(session, name, zone, actor=_operator())
        except (InvalidInput, NotFound) as exc:
            _fail(str(exc))
        click.echo(
            f"clinic {clinic.name}: date-times without an offset are read in {clinic.time_zone}"
        )


@clinics.command("webhook")
@click.argument("name")
@click.option("--url", default=None, help="where the clinic's critical-value alerts are POSTed")
@click.option(
    "--secret-stdin",
    is_flag=True,
    help="read the signing secret from standard input (never from the command line)",
)
@click.option("--remove", is_flag=True, help="stop sending the clinic alerts")
def clinics_webhook(name: str, url: str | None, secret_stdin: bool, remove: bool) -> None:
    """Set, show or remove the webhook a clinic's critical-value alerts are POSTed to, signed
    with HMAC-SHA256 under its secret. With neither --url nor --remove, shows it. Audited."""
    from labinterp.services.errors import InvalidInput, NotFound
    from labinterp.services.webhooks import remove_webhook, set_webhook, show_webhook

    if remove and (url is not None or secret_stdin):
        _fail("--remove takes neither --url nor --secret-stdin")
    if secret_stdin and url is None:
        _fail("--secret-stdin needs --url (give the URL again to keep it)")
    secret: str | None = None
    if secret_stdin:  # before the database is touched: a prompt never waits on a connection
        secret = (
            click.prompt("secret", hide_input=True, err=True)
            if sys.stdin.isatty()
            else sys.stdin.read()
        )
    with _session() as session:
        try:
            if remove:
                remove_webhook(session, name, actor=_operator())
                click.echo(f"clinic {name} has no webhook now: its alerts are no longer sent")
                return
            if url is None:
                shown = show_webhook(session, name)
                if shown is None:
                    click.echo(f"clinic {name} has no webhook")
                else:
                    click.echo(
                        f"{shown.url}  (set {shown.updated_at:%Y-%m-%d %H:%M} UTC by "
                        f"{shown.updated_by or 'unknown'})"
                    )
                return
            webhook = set_webhook(session, name, url, secret, actor=_operator())
        except (InvalidInput, NotFound) as exc:
            _fail(str(exc))
    if not webhook.url.lower().startswith("https://"):
        click.echo(
            "warning: alerts carry patient ids; outside a test, use an https:// URL", err=True
        )
    kept = "" if secret is not None else " (secret kept)"
    click.echo(f"clinic {webhook.clinic} sends its critical-value alerts to {webhook.url}{kept}")


@main.group()
def alerts() -> None:
    """Critical-value alerts sent to clinics' webhooks."""


@alerts.command("list")
@click.option("--undelivered", is_flag=True, help="only alerts still pending or given up")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10000))
def alerts_list(undelivered: bool, limit: int) -> None:
    """The newest alerts first: id, clinic, accession, status, tries, last error."""
    from labinterp.models import AlertStatus
    from labinterp.services.alerts import list_alerts

    with _session() as session:
        rows = list_alerts(session, undelivered=undelivered, limit=limit)
    if not rows:
        click.echo("no undelivered alerts" if undelivered else "no alerts")
        return
    for row in rows:
        if row.delivered_at is not None:
            when = f"delivered {row.delivered_at:%Y-%m-%d %H:%M:%S}"
        elif row.next_attempt_at is not None and row.status == AlertStatus.PENDING:
            when = f"next try {row.next_attempt_at:%Y-%m-%d %H:%M:%S}"
        else:
            when = "-"
        click.echo(
            f"{row.id}  {row.clinic}  {row.accession}  {row.status}  {row.attempts} tries  "
            f"{when}  {row.last_error or ''}".rstrip()
        )


@main.group()
def tokens() -> None:
    """API tokens (shown once, stored as hashes)."""


class Duration(click.ParamType):
    """A duration such as 90d, 12h or 30m (days, hours, minutes)."""

    name = "DURATION"
    _UNITS = {"d": "days", "h": "hours", "m": "minutes"}

    def convert(self, value: Any, param: Any, ctx: Any) -> dt.timedelta:
        if isinstance(value, dt.timedelta):
            return value
        match = re.fullmatch(r"\s*(\d{1,6})\s*([dhm])\s*", str(value))
        if match is None or int(match.group(1)) == 0:
            self.fail(
                f"{value!r} is not a duration: a whole number above 0 and d, h or m "
                "(90d, 12h, 30m)",
                param,
                ctx,
            )
        return dt.timedelta(**{self._UNITS[match.group(2)]: int(match.group(1))})


@tokens.command("create")
@click.option("--role", required=True, type=click.Choice(["clinic", "clinician", "admin"]))
@click.option("--clinic", "clinic_names", multiple=True, help="clinic name (repeat for clinicians)")
@click.option("--name", default=None, help="a label to recognise the token by")
@click.option(
    "--user",
    "user_email",
    default=None,
    metavar="EMAIL",
    help="the token acts as this user (their role and clinics; refused once they are disabled)",
)
@click.option(
    "--expires-in",
    type=Duration(),
    default=None,
    help="the token stops working after this long: 90d, 12h, 30m (default: until revoked)",
)
def tokens_create(
    role: str,
    clinic_names: tuple[str, ...],
    name: str | None,
    user_email: str | None,
    expires_in: dt.timedelta | None,
) -> None:
    """Create a token; it is printed alone on the last line of standard output."""
    from labinterp.services.accounts import create_token
    from labinterp.services.errors import InvalidInput, NotFound

    expires_at = None if expires_in is None else dt.datetime.now(dt.UTC) + expires_in
    with _session() as session:
        try:
            issued = create_token(
                session,
                role,
                list(clinic_names),
                name,
                expires_at=expires_at,
                actor=_operator(),
                user_email=user_email,
            )
        except (InvalidInput, NotFound) as exc:
            _fail(str(exc))
    until = "" if expires_at is None else f", valid until {expires_at:%Y-%m-%d %H:%M} UTC"
    click.echo(f"{role} token {issued.token_id} created{until}; it is shown only now:")
    click.echo(issued.token)


@tokens.command("list")
def tokens_list() -> None:
    """Every token: id, first characters, role, clinics, label, created, expiry, last use,
    revoked."""
    from labinterp.services.accounts import list_tokens

    now = dt.datetime.now(dt.UTC)
    with _session() as session:
        rows = list_tokens(session)
        if not rows:
            click.echo("no tokens")
            return
        for row in rows:
            clinics = ",".join(c.name for c in row.clinics) or "-"
            if row.revoked_at:
                state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}"
            elif row.expires_at is not None and row.expires_at <= now:
                state = f"expired {row.expires_at:%Y-%m-%d %H:%M}"
            else:
                state = "active"
            expires = (
                "never expires"
                if row.expires_at is None
                else f"expires {row.expires_at:%Y-%m-%d %H:%M}"
            )
            used = f"last used {row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "unused"
            click.echo(
                f"{row.id}  {row.prefix}…  {row.role:<9}  {clinics}  {row.name!r}  "
                f"created {row.created_at:%Y-%m-%d %H:%M}  {expires}  {used}  {state}"
            )


@tokens.command("revoke")
@click.argument("token_id", metavar="ID")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token, named by the id `tokens list` shows: it answers 401 from the next
    request on. Never the token itself: a secret on a command line stays in shell history
    and the process list."""
    from labinterp.services.accounts import TOKEN_PREFIX, revoke_token
    from labinterp.services.errors import NotFound

    if token_id.strip().startswith(TOKEN_PREFIX):
        # the secret is not repeated: it would land in yet another terminal or log
        _fail(
            "that is a token itself, not its id; name it by the id that "
            "`labinterp tokens list` shows (and treat the token as exposed: revoke it)"
        )
    try:
        wanted = uuid.UUID(token_id.strip())
    except ValueError:
        _fail("not a token id; `labinterp tokens list` shows the ids")
    with _session() as session:
        try:
            row = revoke_token(session, wanted, actor=_operator())
        except NotFound:
            _fail("no such token; `labinterp tokens list` shows their ids")
        click.echo(f"token {row.id} ({row.prefix}…, {row.role}) is revoked")


@main.group()
def users() -> None:
    """Clinicians and admins who sign in to the review pages with an email and password."""


def _read_password(from_stdin: bool) -> str:
    """The password from standard input (one line), or asked twice at a terminal."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        _fail("no terminal to ask for the password: pipe it with --password-stdin")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@users.command("create")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice(["clinician", "admin"]))
@click.option(
    "--clinic", "clinic_names", multiple=True, help="a clinic they review (repeat for several)"
)
@click.option(
    "--password-stdin", is_flag=True, help="read the password from standard input (one line)"
)
def users_create(
    email: str, role: str, clinic_names: tuple[str, ...], password_stdin: bool
) -> None:
    """Create a user; the password is asked for (or read from stdin), hashed with argon2id,
    and never shown or stored as given."""
    from labinterp.services.errors import AlreadyExists, InvalidInput, NotFound
    from labinterp.services.users import create_user

    password = _read_password(password_stdin)
    with _session() as session:
        try:
            user = create_user(
                session, email, password, role, list(clinic_names), actor=_operator()
            )
        except (AlreadyExists, InvalidInput, NotFound) as exc:
            _fail(str(exc))
        clinics = ", ".join(c.name for c in user.clinics) or "every clinic"
        click.echo(f"created {user.role} {user.email} ({user.id}) for {clinics}")


@users.command("list")
def users_list() -> None:
    """Every user: email, role, clinics, created, disabled."""
    from labinterp.services.users import list_users

    with _session() as session:
        rows = list_users(session)
        if not rows:
            click.echo("no users")
            return
        for user in rows:
            clinics = ",".join(c.name for c in user.clinics) or "-"
            state = (
                "active" if user.disabled_at is None else f"disabled {user.disabled_at:%Y-%m-%d}"
            )
            click.echo(
                f"{user.email}  {user.role:<9}  {clinics}  "
                f"created {user.created_at:%Y-%m-%d %H:%M}  {state}"
            )


@users.command("disable")
@click.argument("email")
def users_disable(email: str) -> None:
    """Disable a user: no more sign-in; their open sessions and tokens stop working."""
    from labinterp.services.errors import NotFound
    from labinterp.services.users import disable_user

    with _session() as session:
        try:
            user = disable_user(session, email, actor=_operator())
        except NotFound as exc:
            _fail(str(exc))
        click.echo(f"{user.email} is disabled")


DEMO_CLINICIAN = "demo@labinterp.local"


@users.command("demo")
@click.option("--clinic", default="demo-clinic", show_default=True, help="the clinic they review")
@click.option("--email", default=DEMO_CLINICIAN, show_default=True)
def users_demo(clinic: str, email: str) -> None:
    """The demo clinician of the embedded default (SQLite only): created with its clinic if
    missing, given a new random password each run (printed on the last line)."""
    from labinterp.services.accounts import create_clinic
    from labinterp.services.errors import AlreadyExists, InvalidInput, NotFound
    from labinterp.services.users import create_user, find_user, set_password

    if not load_settings().is_sqlite:
        _fail(
            "a demo clinician is made only on the embedded default (SQLite); "
            "create real users with `labinterp users create`"
        )
    password = secrets.token_urlsafe(12)
    with _session() as session:
        try:
            create_clinic(session, clinic, actor=_operator())
        except AlreadyExists:
            session.rollback()
        try:
            user = find_user(session, email)
        except NotFound:
            try:
                user = create_user(
                    session, email, password, "clinician", [clinic], actor=_operator()
                )
            except InvalidInput as exc:
                _fail(str(exc))
        else:
            if user.disabled_at is not None:
                _fail(f"{user.email} is disabled")
            set_password(session, email, password, actor=_operator())
        click.echo(f"demo clinician {user.email} reviews {clinic}; password, shown only now:")
    click.echo(password)


@main.group()
def rulesets() -> None:
    """Ruleset versions: list them, check a file, choose the one new panels use."""


@rulesets.command("list")
def rulesets_list() -> None:
    """Every ruleset version in the rulesets folder, its title and date; `*` marks the active."""
    from labinterp.runtime import get_runtime
    from labinterp.services.rulesets import active_version

    settings = load_settings()
    _check_rulesets(settings)
    with _session() as session:
        active = active_version(session, settings.default_ruleset)
    for version, ruleset in sorted(get_runtime().rulesets.items()):
        mark = "*" if version == active else " "
        click.echo(f"{mark} {version}  {ruleset.published:%Y-%m-%d}  {ruleset.title}")
    click.echo(f"active: {active}")


@rulesets.command("validate")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False))
def rulesets_validate(path: str) -> None:
    """Check one ruleset file with the checks `serve` and `worker` make at startup; an error
    names the file and the line."""
    from pathlib import Path

    from labinterp.domain.ruleset import RulesetError
    from labinterp.rulesets import load_ruleset

    try:
        ruleset = load_ruleset(Path(path))
    except RulesetError as exc:
        _fail(str(exc))
    click.echo(
        f"OK {path}: ruleset {ruleset.version} ({ruleset.title}, published "
        f"{ruleset.published:%Y-%m-%d}): {len(ruleset.analytes)} analytes, "
        f"{len(ruleset.red_flags)} red flags, {len(ruleset.sources)} sources"
    )


@rulesets.command("activate")
@click.argument("version")
def rulesets_activate(version: str) -> None:
    """Make VERSION the ruleset new panels are interpreted with (earlier interpretations keep
    theirs). Audited as ruleset.activate; running processes follow within seconds."""
    from labinterp.runtime import get_runtime
    from labinterp.services.rulesets import activate, active_version

    settings = load_settings()
    _check_rulesets(settings)
    known = get_runtime().rulesets
    if version not in known:
        _fail(f"no ruleset {version}; the known versions are {', '.join(sorted(known))}")
    with _session() as session:
        previous = active_version(session, settings.default_ruleset)
        activate(session, _operator(), known, version)
    click.echo(f"ruleset {version} is active (was {previous})")


@main.command("import")
@click.argument("file", metavar="FILE")
@click.option("--clinic", "clinic_name", required=True, help="the clinic the panels belong to")
@click.option(
    "--errors",
    "errors_path",
    default=None,
    type=click.Path(dir_okay=False, writable=True),
    help="write the rejected rows here (CSV: line, accession, field, reason; the field of a "
    "FHIR NDJSON line is its FHIRPath)",
)
def import_(file: str, clinic_name: str, errors_path: str | None) -> None:
    """Import historical results: the CSV of API.md "Command line", or FHIR NDJSON (one
    Bundle per line, as POST /fhir/r4/Bundle takes it; FILE.ndjson, or a first line starting
    with `{`), gzip or not; `-` reads standard input. Each panel is accepted or rejected whole,
    as the API would; the imported ones are queued for interpretation. Importing a file again
    changes nothing."""
    import functools

    from labinterp.interop.fhir_in import ndjson_panels
    from labinterp.interop.intake import clinic_time_zone
    from labinterp.progress import CommandProgress
    from labinterp.services.importing import (
        ErrorReport,
        ImportRefused,
        ImportSummary,
        import_panels,
        open_source,
        read_panels,
    )

    clinic = _clinic_ref(clinic_name)
    from labinterp.runtime import get_runtime

    rt = get_runtime()
    ruleset = rt.current_ruleset()

    def show(s: ImportSummary, *, final: bool = False) -> None:
        bar.update(
            source.position(),
            f"{s.rows:,} rows, {s.panels:,} panels, {s.panels / bar.elapsed():,.0f} panels/s",
            f": {s.imported:,} imported, {s.already_present:,} already present, "
            f"{s.conflicting:,} conflicting, {s.rejected:,} rejected",
            final=final,
        )

    try:
        with contextlib.ExitStack() as stack:
            source = stack.enter_context(open_source(file))
            errors_stream = (
                None
                if errors_path is None
                else stack.enter_context(open(errors_path, "w", encoding="utf-8", newline=""))
            )
            bar = stack.enter_context(CommandProgress(sys.stderr, source.size))
            summary = import_panels(
                rt.engine,
                _operator(),
                clinic,
                read_panels(
                    source.text,
                    ndjson=functools.partial(
                        ndjson_panels,
                        ruleset=ruleset,
                        time_zone=clinic_time_zone(rt.engine, clinic.id),
                    ),
                    is_ndjson=file.lower().endswith((".ndjson", ".ndjson.gz")),
                ),
                ruleset,
                dt.datetime.now(dt.UTC),
                ErrorReport(errors_stream),
                on_progress=show,
            )
            show(summary, final=True)
    except ImportRefused as exc:
        _fail(f"{file}: {exc}")
    except OSError as exc:
        _fail(f"{file}: {exc.strerror or exc}")
    click.echo(
        f"imported {summary.imported}, already present {summary.already_present}, "
        f"conflicting {summary.conflicting}, rejected {summary.rejected} "
        f"({summary.panels} panels, {summary.rows} rows)"
    )
    if (summary.conflicting or summary.rejected) and errors_path is None:
        click.echo("rerun with --errors FILE to see why panels were refused", err=True)


@main.command()
@click.option("--ruleset", required=True, help="the ruleset version to interpret them with")
@click.option("--dry-run", is_flag=True, help="count what would change; write nothing")
@click.option("--since", default=None, help="only panels collected from DATE (or date-time)")
@click.option("--until", default=None, help="only panels collected up to DATE (inclusive)")
@click.option("--clinic", default=None, help="only this clinic's panels")
@click.option("--wait", is_flag=True, help="follow the job to its end, then print its summary")
def reprocess(
    ruleset: str,
    dry_run: bool,
    since: str | None,
    until: str | None,
    clinic: str | None,
    wait: bool,
) -> None:
    """Interpret stored panels again under another ruleset (a re-processing job, worked in
    chunks by the workers), or with --dry-run count what would change. Earlier
    interpretations are kept; panels whose findings change go back to the review queue."""
    from marshmallow import ValidationError

    from labinterp.runtime import get_runtime
    from labinterp.schemas.reprocessing import JobFilterIn
    from labinterp.services import reprocessing as service
    from labinterp.services.errors import Conflict, InvalidInput

    settings = load_settings()
    _check_rulesets(settings)
    _require_schema(settings)
    try:
        window = JobFilterIn().load(
            {
                key: value
                for key, value in (("collected_from", since), ("collected_to", until))
                if value is not None
            }
        )
    except ValidationError as exc:
        options = {"collected_from": "--since", "collected_to": "--until"}
        messages = cast(dict[str, list[str]], exc.messages)
        _fail("; ".join(f"{options.get(k, k)}: {' '.join(v)}" for k, v in messages.items()))
    rt = get_runtime()
    request = service.JobRequest(
        ruleset=ruleset,
        dry_run=dry_run,
        clinic=clinic,
        collected_from=window.get("collected_from"),
        collected_to=window.get("collected_to"),
    )
    names = {"filter.clinic": "--clinic", "filter.collected_to": "--until", "ruleset": "--ruleset"}
    with _session() as session:
        try:
            job = service.start_job(
                session, rt.dispatcher, _operator(), rt.rulesets, request, dt.datetime.now(dt.UTC)
            )
        except InvalidInput as exc:
            _fail("; ".join(f"{names.get(k, k)}: {' '.join(v)}" for k, v in exc.errors.items()))
        except Conflict as exc:
            _fail(str(exc))
        job_id = job.id
    kind = "dry run" if dry_run else "job"
    click.echo(f"reprocessing {kind} {job_id} queued (ruleset {ruleset})")
    if not wait:
        click.echo(f"follow it with GET /api/v1/reprocessing-jobs/{job_id}, or rerun with --wait")
        return
    final = _follow_job(rt.session_factory, job_id)
    _print_job_summary(final)
    if final.status != "done":
        _fail(f"the job ended {final.status}" + (f": {final.error}" if final.error else ""))


def _follow_job(session_factory: Any, job_id: Any, every: float = 0.5) -> Any:
    """Poll the job until it ends, with a live bar on a terminal (plain lines otherwise)."""
    from labinterp.models import JobStatus
    from labinterp.progress import CommandProgress
    from labinterp.services.reprocessing import get_job

    warned = False
    with CommandProgress(sys.stderr, None, items=True) as bar:
        while True:
            with session_factory() as session:
                job = get_job(session, job_id)
                session.expunge(job)
            rate = job.processed / bar.elapsed()
            ended = not JobStatus(job.status).active
            bar.update(
                job.processed,
                f"{job.status}: {job.processed:,}/{job.total:,} panels, {rate:,.0f} panels/s",
                f", {job.changed:,} changed, {job.failed:,} failed",
                final=ended,
                total=job.total or None,
            )
            if ended:
                return job
            if job.status == JobStatus.QUEUED and bar.elapsed() > 15 and not warned:
                warned = True
                click.echo(
                    "no worker has taken the job up yet: is `labinterp serve` or "
                    "`labinterp worker` running on this database?",
                    err=True,
                )
            time.sleep(every)


def _print_job_summary(job: Any) -> None:
    """The job's counts and its changes by finding code, as a table."""
    from rich.console import Console
    from rich.table import Table

    summary = job.summary or {}
    console = Console(file=sys.stdout, width=100)
    console.print(
        f"{'dry run' if job.dry_run else 'reprocessing job'} {job.id} under ruleset "
        f"{job.ruleset}: {job.status}"
    )
    counts = Table()
    counts.add_column("panels")
    counts.add_column("count", justify="right")
    for label, value in (
        ("total", job.total),
        ("processed", job.processed),
        ("changed", job.changed),
        ("failed", job.failed),
        ("newly flagged", summary.get("newly_flagged", 0)),
        ("cleared", summary.get("cleared", 0)),
        ("severity changed", summary.get("severity_changed", 0)),
        ("priority changed", summary.get("priority_changed", 0)),
    ):
        counts.add_row(label, f"{value:,}")
    console.print(counts)
    by_code = summary.get("by_code") or {}
    if by_code:
        codes = Table()
        codes.add_column("finding code")
        codes.add_column("gained", justify="right")
        codes.add_column("lost", justify="right")
        for code, change in sorted(by_code.items()):
            codes.add_row(code, f"{change['gained']:,}", f"{change['lost']:,}")
        console.print(codes)
    for failure in summary.get("failures") or []:
        console.print(f"failed: panel {failure['panel_id']}: {failure['reason']}")


@main.group()
def panels() -> None:
    """Panels whose interpretation failed: list them, queue them again."""


@panels.command("failed")
@click.option("--limit", default=100, show_default=True, type=int)
def panels_failed(limit: int) -> None:
    """The panels that ended `failed`: id, clinic, accession, failure code and reason."""
    from labinterp.services.reading import failed_panels

    with _session() as session:
        rows = failed_panels(session, limit)
    if not rows:
        click.echo("no failed panels")
        return
    for row in rows:
        click.echo(f"{row.id}  {row.clinic}  {row.accession}  {row.code}: {row.reason}")


@panels.command("retry")
@click.argument("panel_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="every failed panel")
@click.option("--clinic", default=None, help="only this clinic's failed panels")
@click.option(
    "--code",
    default=None,
    type=click.Choice([c.value for c in _failure_codes()]),
    help="only panels that failed for this reason",
)
def panels_retry(
    panel_ids: tuple[str, ...], every: bool, clinic: str | None, code: str | None
) -> None:
    """Queue failed panels again (attempts reset): the ids given, or --all, narrowed by
    --clinic and --code. Audited."""
    import datetime as dt
    import uuid

    from labinterp.models import FailureCode
    from labinterp.runtime import get_runtime
    from labinterp.services.accounts import find_clinic
    from labinterp.services.errors import NotFound
    from labinterp.services.sweeper import retry_failed_panels

    if not panel_ids and not every and clinic is None and code is None:
        _fail("name the panels to retry, or give --all (narrowed by --clinic or --code)")
    try:
        ids = [uuid.UUID(i) for i in panel_ids] if panel_ids else None
    except ValueError:
        _fail("a panel id is a UUID, as `labinterp panels failed` shows it")
    with _session() as session:
        try:
            clinic_id = find_clinic(session, clinic).id if clinic else None
        except NotFound as exc:
            _fail(str(exc))
        retried = retry_failed_panels(
            session,
            get_runtime().dispatcher,
            _operator(),
            dt.datetime.now(dt.UTC),
            panel_ids=ids,
            clinic_id=clinic_id,
            code=FailureCode(code) if code else None,
        )
    click.echo(f"queued {len(retried.panel_ids)} failed panel(s) again")
    if retried.unsent:
        click.echo(
            f"{len(retried.unsent)} could not be handed to the broker now; the sweeper will",
            err=True,
        )


def _operator() -> Actor:
    """Who runs this command, for the audit trail: the operating-system user."""
    from labinterp.services.audit import Actor

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user with no name
        user = f"uid {os.getuid()}"
    return Actor(name=f"cli:{user}"[:200], role="admin")


# --- demo ----------------------------------------------------------------------------------


@main.command()
@click.option(
    "--url", default="http://127.0.0.1:5000", show_default=True, help="a running labinterp"
)
@click.option(
    "--token",
    envvar="LABINTERP_DEMO_TOKEN",
    default=None,
    help="a clinic token (default: create a demo clinic and token in this instance)",
)
@click.option(
    "--timeout", default=20.0, show_default=True, help="seconds to wait for interpretations"
)
def demo(url: str, token: str | None, timeout: float) -> None:
    """Post the sample panels through the running pipeline and show what was flagged and why."""
    from labinterp.demo_runner import run_demo

    sys.exit(run_demo(url.rstrip("/"), token, timeout, make_token=_demo_token))


def _demo_token() -> str:
    from labinterp.services.accounts import create_clinic, create_token
    from labinterp.services.errors import AlreadyExists

    with _session() as session:
        try:
            create_clinic(session, "demo-clinic", actor=_operator())
        except AlreadyExists:
            session.rollback()
        return create_token(session, "clinic", ["demo-clinic"], "demo", actor=_operator()).token


def _shown(url: str) -> str:
    """A database URL fit for a log line: the password masked."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


from labinterp.cli_hl7 import codes, mllp  # noqa: E402 - they use the helpers above

main.add_command(codes)
main.add_command(mllp)

if __name__ == "__main__":  # pragma: no cover
    main()
