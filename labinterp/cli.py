"""The `labinterp` command."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Any, NoReturn

import click
from sqlalchemy.exc import OperationalError

from labinterp.config import ConfigError, Settings
from labinterp.config import load_settings as _load_settings


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


def _session():
    from labinterp.runtime import get_runtime

    return get_runtime().session_factory()


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
    from labinterp.db import database_is_current, upgrade_database

    settings = load_settings()
    _check_rulesets(settings)
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    if settings.is_sqlite:
        upgrade_database(settings.database_url)  # the embedded default sets itself up
    else:
        try:
            current = database_is_current(settings.database_url)
        except OperationalError as exc:
            _fail(f"cannot reach the database {_shown(settings.database_url)}: {exc.orig}")
        if not current:
            _fail("the database schema is not current: run `labinterp db upgrade` first")
    worker: subprocess.Popen[bytes] | None = None
    if not no_worker:
        worker = subprocess.Popen(
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
            ],
        )
        click.echo(f"started worker process {worker.pid}", err=True)
    try:
        _run_gunicorn(host, port, workers, threads)
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()


def _run_gunicorn(host: str, port: int, workers: int, threads: int) -> None:
    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("accesslog", "-")
            self.cfg.set("graceful_timeout", 10)

        def load(self) -> Any:
            from labinterp.app import create_app

            return create_app()

    click.echo(
        f"labinterp API on http://{host}:{port}  (docs: http://{host}:{port}/docs)", err=True
    )
    _Server().run()


@main.command()
@click.option("--concurrency", default=None, type=int, help="worker processes (default: cores)")
@click.option("--pool", default=None, help="prefork, solo or threads")
@click.option("--beat", is_flag=True, help="also run the periodic sweeper (run one per deployment)")
@click.option("--loglevel", default="INFO", show_default=True)
def worker(concurrency: int | None, pool: str | None, beat: bool, loglevel: str) -> None:
    """Run a Celery worker (as many as the load needs, on as many machines)."""
    settings = load_settings()
    _check_rulesets(settings)
    from worker.celery_app import QUEUE, celery_app

    argv = ["worker", f"--loglevel={loglevel}", "-Q", QUEUE]
    if pool or settings.embedded_broker:
        argv.append(f"--pool={pool or 'solo'}")
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    if beat:
        argv.append("--beat")
    celery_app.worker_main(argv)


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
    click.echo("database is at the newest schema")


@main.group()
def clinics() -> None:
    """Clinics (tenants)."""


@clinics.command("create")
@click.argument("name")
@click.option("--if-not-exists", is_flag=True, help="succeed quietly when it already exists")
def clinics_create(name: str, if_not_exists: bool) -> None:
    from labinterp.services.accounts import create_clinic
    from labinterp.services.errors import AlreadyExists, InvalidInput

    with _session() as session:
        try:
            clinic = create_clinic(session, name)
        except AlreadyExists as exc:
            if if_not_exists:
                click.echo(str(exc))
                return
            _fail(f"{exc} (use --if-not-exists to accept that)")
        except InvalidInput as exc:
            _fail(str(exc))
        click.echo(f"created clinic {clinic.name} ({clinic.id})")


@main.group()
def tokens() -> None:
    """API tokens (shown once, stored as hashes)."""


@tokens.command("create")
@click.option("--role", required=True, type=click.Choice(["clinic", "clinician", "admin"]))
@click.option("--clinic", "clinic_names", multiple=True, help="clinic name (repeat for clinicians)")
@click.option("--name", default=None, help="a label to recognise the token by")
def tokens_create(role: str, clinic_names: tuple[str, ...], name: str | None) -> None:
    """Create a token; it is printed alone on the last line of standard output."""
    from labinterp.services.accounts import create_token
    from labinterp.services.errors import InvalidInput, NotFound

    with _session() as session:
        try:
            issued = create_token(session, role, list(clinic_names), name)
        except (InvalidInput, NotFound) as exc:
            _fail(str(exc))
    click.echo(f"{role} token {issued.token_id} created; it is shown only now:")
    click.echo(issued.token)


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

    if token is None:
        token = _demo_token()
    sys.exit(run_demo(url.rstrip("/"), token, timeout))


def _demo_token() -> str:
    from labinterp.services.accounts import create_clinic, create_token
    from labinterp.services.errors import AlreadyExists

    with _session() as session:
        try:
            create_clinic(session, "demo-clinic")
        except AlreadyExists:
            session.rollback()
        return create_token(session, "clinic", ["demo-clinic"], "demo").token


def _shown(url: str) -> str:
    """A database URL fit for a log line: the password masked."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":  # pragma: no cover
    main()
