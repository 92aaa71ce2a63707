"""Engines, sessions and the schema: one place that knows how labinterp talks to its database."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Dialect, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from labinterp import jsontext

if TYPE_CHECKING:
    from alembic.config import Config

try:  # POSIX: serialise concurrent upgrades of one SQLite file
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

SQLITE_PRAGMAS = (
    "PRAGMA foreign_keys=ON",
    "PRAGMA journal_mode=WAL",  # readers don't block the writer (API and worker share the file)
    "PRAGMA busy_timeout=30000",
    # FULL: a 202 means the panel survives a power cut, not only a crash of labinterp (NORMAL
    # with WAL may lose the last commits to an OS crash)
    "PRAGMA synchronous=FULL",
)


def normalise_url(url: str | URL) -> str:
    """``postgres://`` and ``postgresql://`` (what hosting platforms hand out) mean psycopg 3."""
    text = url if isinstance(url, str) else url.render_as_string(hide_password=False)
    for prefix in ("postgres://", "postgresql://"):
        if text.startswith(prefix):
            return "postgresql+psycopg://" + text[len(prefix) :]
    return text


def default_database_url(environ: Mapping[str, str] | None = None) -> str:
    """``DATABASE_URL``, else the SQLite file ``labinterp.db`` in the instance folder."""
    env = os.environ if environ is None else environ
    if env.get("DATABASE_URL"):
        return normalise_url(env["DATABASE_URL"])
    instance = Path(env.get("LABINTERP_INSTANCE") or "instance").resolve()
    return f"sqlite:///{instance / 'labinterp.db'}"


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or url.query.get("mode") == "memory":
        return None
    if database.startswith("file:"):  # a URI filename (?uri=true)
        database = database[len("file:") :].split("?", 1)[0]
    return Path(database)


def make_engine(url: str, *, statement_timeout_seconds: int = 0, **options: Any) -> Engine:
    """An engine for ``url``; ``options`` go to ``create_engine`` (e.g. ``poolclass``).

    Values bound to a statement never appear in logs or error messages (they are patient
    data). SQLite: the parent folder is created and every connection gets the pragmas above.
    PostgreSQL: every statement is aborted after ``statement_timeout_seconds`` (0: never).
    Connections are not pinged before use (a round trip on every request): a connection found
    dead raises a disconnect error, which invalidates the pool, and the API answers 503 or
    tries once more (see ``labinterp.api.problems``).
    """
    _quiet_sql_logging()
    parsed = make_url(normalise_url(url))
    # JSON columns keep exact decimals both ways: Decimal("1.10") reads back so
    options = {
        "json_serializer": jsontext.dumps,
        "json_deserializer": jsontext.loads,
        "hide_parameters": True,
        **options,
    }
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_file(parsed)
        if path is not None:
            path.expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **options)
        event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and statement_timeout_seconds:
        connect_args = dict(options.pop("connect_args", {}))
        timeout = f"-c statement_timeout={statement_timeout_seconds * 1000}"
        connect_args["options"] = f"{connect_args.get('options', '')} {timeout}".strip()
        options["connect_args"] = connect_args
    return create_engine(parsed, **options)


def _quiet_sql_logging() -> None:
    """SQLAlchemy logs statements at INFO and result rows at DEBUG whenever its logger is
    enabled for them, echo or not: a root logger at DEBUG (a logging config, a worker run with
    a debug level that reaches the root) would print every row read, patient data and all.
    Unless someone set its level on purpose, it logs warnings only."""
    engine_log = logging.getLogger("sqlalchemy.engine")
    if engine_log.level == logging.NOTSET:
        engine_log.setLevel(logging.WARNING)


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def execute_in_autocommit(engine: Engine, statement: str, parameters: Mapping[str, Any]) -> None:
    """Run one statement as its own transaction (autocommit) on a pooled driver connection:
    durable when this returns, in one round trip, without a SQLAlchemy ``Connection`` around
    it (the hottest write of the service; that wrapper costs more than the statement's own
    client work). Driver errors come out as SQLAlchemy's exceptions, values hidden; a lost
    connection invalidates the pool, as SQLAlchemy's own ``Connection`` does."""
    fairy = _raw_connection(engine, statement)
    connection: Any = fairy.driver_connection
    try:
        connection.autocommit = True
        try:
            connection.execute(statement, parameters)
        finally:
            if not connection.closed:
                connection.autocommit = False
    except engine.dialect.loaded_dbapi.Error as exc:
        raise _statement_error(engine, fairy, statement, exc) from None
    finally:
        fairy.close()


def _raw_connection(engine: Engine, statement: str) -> Any:
    """A pooled driver connection (a pool "fairy"); a failure to connect is raised as
    :func:`driver_error` says, marked lost."""
    try:
        return engine.raw_connection()  # raises the driver's own error when it cannot connect
    except engine.dialect.loaded_dbapi.Error as exc:
        raise driver_error(engine.dialect, statement, exc, lost=True) from None


def _statement_error(engine: Engine, fairy: Any, statement: str, exc: Exception) -> Exception:
    """The driver's error of ``statement`` on ``fairy`` as SQLAlchemy's; when it says the
    connection is lost, the pool is invalidated (every connection of that server's lifetime),
    as SQLAlchemy's own ``Connection`` does."""
    lost = engine.dialect.is_disconnect(exc, fairy.dbapi_connection, None)  # type: ignore[arg-type]
    if lost:
        engine.pool._invalidate(fairy, exc)
    return driver_error(engine.dialect, statement, exc, lost=lost)


class AutocommitWriter:
    """:func:`execute_in_autocommit` for one writer at a time (a group commit's leader) on one
    connection of ``engine``'s kept out of its pool: no checkout, check-in and reset per
    statement, and the connection stays in autocommit. Not thread-safe: its user makes sure
    one call runs at a time.

    The connection is made on first use with the pool's own settings (``statement_timeout``,
    ``connect`` events). One found dead is dropped, the pool invalidated as
    :func:`execute_in_autocommit` does, and the next call connects anew; so is one whose call
    ended in anything but a statement's result or error (its protocol state is unknown). After
    a fork the parent's connection is left to the parent. ``engine.dispose()`` closes it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._fairy: Any = None
        self._driver: Any = None
        self._pid = 0
        event.listen(engine, "engine_disposed", self._disposed)

    def execute(self, statement: str, parameters: Mapping[str, Any]) -> None:
        fairy, connection = self._connection(statement)
        ok = False
        try:
            connection.execute(statement, parameters)
            ok = True
        except self.engine.dialect.loaded_dbapi.Error as exc:
            error = _statement_error(self.engine, fairy, statement, exc)
            ok = not getattr(error, "connection_invalidated", False)
            raise error from None
        finally:
            if not ok:
                self.close()

    def close(self) -> None:
        fairy, self._fairy, self._driver = self._fairy, None, None
        if fairy is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):  # closing a dead connection may fail too
                fairy.close()

    def _connection(self, statement: str) -> tuple[Any, Any]:
        """The pool's handle of the connection (to close or invalidate it) and the driver's."""
        if self._fairy is not None and self._pid == os.getpid():
            return self._fairy, self._driver
        self._fairy = self._driver = None  # a parent's: never touched here
        fairy = _raw_connection(self.engine, statement)
        driver = fairy.driver_connection
        fairy.detach()  # ours until closed: the pool makes another in its place
        driver.autocommit = True
        self._fairy, self._driver, self._pid = fairy, driver, os.getpid()
        return fairy, driver

    def _disposed(self, _engine: Engine) -> None:
        self.close()


def driver_error(
    dialect: Dialect, statement: str, exc: Exception, *, lost: bool = False
) -> StatementError:
    """The driver's error as SQLAlchemy raises it (IntegrityError, OperationalError …), for
    code that runs a statement on the driver's own connection; values hidden."""
    return DBAPIError.instance(
        statement,
        None,
        exc,
        dialect.loaded_dbapi.Error,
        hide_parameters=True,
        connection_invalidated=lost,
        dialect=dialect,
    )


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """``engine.begin()`` for a transaction that writes. On a SQLite file, writers take turns
    on a lock of their own first (every thread of every process of the instance): SQLite lets
    one transaction write at a time, and a writer that finds the file locked sleeps in growing
    steps (up to 100 ms each) before it looks again, so under load its waits, not its work,
    would set the pace. A lock taken in turn wakes the next writer as soon as one commits."""
    lock = _sqlite_writers(engine)
    if lock is None:
        with engine.begin() as conn:
            yield conn
        return
    with lock, engine.begin() as conn:
        yield conn


class _FileLock:
    """A lock for the threads of this process (a ``threading.Lock``) and for the processes of
    the machine (``flock`` on a file beside the database)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._thread_lock = threading.Lock()
        self._file: Any = None
        self._pid = 0

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            if self._file is None or self._pid != os.getpid():  # after a fork: our own file
                self._file = open(self._path, "a")
                self._pid = os.getpid()
            if fcntl is not None:
                fcntl.flock(self._file, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            if fcntl is not None:
                fcntl.flock(self._file, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


_writer_locks: dict[str, _FileLock] = {}
_writer_locks_guard = threading.Lock()


def _sqlite_writers(engine: Engine) -> _FileLock | None:
    if engine.dialect.name != "sqlite":
        return None
    path = _sqlite_file(engine.url)
    if path is None:
        return None
    key = str(path.expanduser().resolve())
    with _writer_locks_guard:
        if key not in _writer_locks:
            _writer_locks[key] = _FileLock(Path(key + ".write-lock"))
        return _writer_locks[key]


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # objects stay readable after commit: services return them to views that serialise them
    return sessionmaker(bind=engine, expire_on_commit=False)


# --- the schema (Alembic) ---------------------------------------------------------------------


def find_migrations() -> Path:
    """The ``migrations`` folder: beside the package (a source or editable install), else
    where an installed wheel put it, else in the current directory."""
    from labinterp.resources import roots

    candidates = roots()
    for root in candidates:
        if (root / "migrations" / "env.py").is_file():
            return root / "migrations"
    searched = ", ".join(str(c / "migrations") for c in candidates)
    raise FileNotFoundError(f"Alembic migrations not found (looked in {searched})")


def alembic_config(url: str) -> Config:
    """An Alembic ``Config`` for ``url`` that leaves the caller's logging alone."""
    from alembic.config import Config

    migrations = find_migrations()
    ini = migrations.parent / "alembic.ini"
    config = Config(str(ini)) if ini.is_file() else Config()
    config.set_main_option("script_location", str(migrations))
    # configparser interpolates %: a URL-encoded password must survive it
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


@contextlib.contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    """Two processes upgrading one SQLite file take turns (PostgreSQL: an advisory lock in
    migrations/env.py does the same)."""
    parsed = make_url(normalise_url(url))
    path = _sqlite_file(parsed) if parsed.get_backend_name() == "sqlite" else None
    if path is None or fcntl is None:
        yield
        return
    path = path.expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".migrate-lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def upgrade_database(url: str) -> None:
    """Apply every migration up to head (a no-op when the schema is current)."""
    from alembic import command

    with _migration_lock(url):
        command.upgrade(alembic_config(url), "head")


def database_is_current(url: str) -> bool:
    """True when the database is at the newest migration. An unreachable database raises
    (``sqlalchemy.exc.OperationalError``): that is a different problem from an old schema."""
    from alembic.runtime.migration import MigrationContext

    heads = migration_heads()
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_file(parsed)
        if path is not None and not path.expanduser().exists():
            return False  # don't create an empty file just to find it has no schema
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
    return current == heads


@functools.cache
def migration_heads() -> frozenset[str]:
    """The newest revision(s) of the migrations shipped with this code (read once a process)."""
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory(str(find_migrations())).get_heads())
