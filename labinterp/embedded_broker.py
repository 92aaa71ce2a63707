"""The embedded broker: kombu's filesystem transport, with messages and exchange tables that
appear whole or not at all.

kombu 5.7's filesystem transport creates a message file empty (`open(name, "wb")`) and only
then locks and writes it, while a consumer takes any file it lists, without a lock, by
moving it to the temporary folder and reading it. A consumer that lists the folder between
those two steps reads an empty message: `json.loads("")` raises in the worker's consume loop,
Celery stops the worker ("Unrecoverable error: JSONDecodeError"), and the message is gone
until the sweeper publishes it again (issue 5). Its exchange tables are created the same way
(`open(name, "wb")` before the lock), so a process reading or binding at that moment reads an
empty table and raises.

Here a message is written under a hidden temporary name in the queue folder and renamed into
place; a consumer claims a message by renaming it, within the same folder, to a hidden name
of its own; an exchange table is rewritten under a lock file and renamed into place. On POSIX
a rename within one folder is atomic, so every file a consumer or a reader can see is whole.

Select it with Celery's ``broker_transport`` setting (:func:`embedded_broker_options`); the
broker URL stays ``filesystem://``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from time import monotonic
from typing import TYPE_CHECKING, Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

if TYPE_CHECKING:
    from celery import Celery

    from labinterp.config import Settings

log = logging.getLogger(__name__)

#: Celery's ``broker_transport`` for the embedded broker (kombu resolves the path)
EMBEDDED_TRANSPORT = "labinterp.embedded_broker:EmbeddedTransport"

# Names a consumer never takes: hidden (a leading dot) and not ending in ".msg"
_WRITING = ".tmp"  # a message or table being written
_CLAIMED = ".claimed"  # a message a consumer has taken and is reading
_UNREADABLE = ".unreadable"  # a message file that was not a message, kept for a person to read


class UnreadableTable(ChannelError):
    """An exchange table file that holds no table (left half-written by kombu's own transport)."""


def _message_queue(filename: str) -> str | None:
    """The queue a message file belongs to (kombu's naming: ``<ms>_<uuid>.<queue>.msg``)."""
    if filename.startswith(".") or not filename.endswith(".msg"):
        return None
    return filename.partition(".")[2].removesuffix(".msg")


class EmbeddedChannel(filesystem.Channel):
    """kombu's filesystem channel, with atomic message files and exchange tables."""

    # --- messages --------------------------------------------------------------------------

    # kombu's filesystem channel says `payload` where its base says `message`
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Write the message under a hidden name, then rename it into the queue."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        folder = self.data_folder_out
        body = str_to_bytes(dumps(payload))
        _write_atomically(os.path.join(folder, name), body, what=f"message for queue {queue!r}")

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        """The oldest message of ``queue``, claimed by renaming it within its folder: another
        consumer that tries the same file finds it gone and takes the next."""
        folder = self.data_folder_in
        for filename in sorted(os.listdir(folder)):
            if _message_queue(filename) != queue:
                continue
            path = os.path.join(folder, filename)
            claimed = os.path.join(folder, f".{filename}.{os.getpid()}{_CLAIMED}")
            try:
                os.rename(path, claimed)
            except FileNotFoundError:
                continue  # another consumer claimed it first
            except OSError as exc:
                raise ChannelError(f"Cannot claim message {path!r}") from exc
            try:
                with open(claimed, "rb") as f:
                    payload = f.read()
            except OSError as exc:
                raise ChannelError(f"Cannot read message {claimed!r}") from exc
            try:
                message = loads(bytes_to_str(payload))
            except ValueError:
                # not written by this transport (messages here appear whole): keep it for a
                # person, and let the worker go on with the next message
                kept = os.path.join(folder, f".{filename}{_UNREADABLE}")
                os.replace(claimed, kept)
                log.error("message file %s is not a message; kept as %s", path, kept)
                continue
            self._dispose_of(claimed, filename)
            return message
        raise Empty()

    def _dispose_of(self, claimed: str, filename: str) -> None:
        if self.store_processed:
            processed = Path(self.processed_folder)
            processed.mkdir(parents=True, exist_ok=True)
            shutil.move(claimed, processed / filename)
        else:
            os.unlink(claimed)

    def _size(self, queue: str) -> int:
        return sum(_message_queue(f) == queue for f in os.listdir(self.data_folder_in))

    def _purge(self, queue: str) -> int:
        count = 0
        for filename in os.listdir(self.data_folder_in):
            if _message_queue(filename) == queue:
                with contextlib.suppress(FileNotFoundError):  # a consumer took it meanwhile
                    os.unlink(os.path.join(self.data_folder_in, filename))
                    count += 1
        return count

    # --- exchange tables -------------------------------------------------------------------

    def get_table(self, exchange: str) -> list[filesystem.exchange_queue_t]:
        """The exchange's bindings. No lock needed: a table is only ever replaced whole."""
        file = self._exchange_file(exchange)
        try:
            text = file.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc
        try:
            return [filesystem.exchange_queue_t(*row) for row in loads(bytes_to_str(text))]
        except (ValueError, TypeError) as exc:
            raise UnreadableTable(f"exchange table {file} is not a table: {text[:80]!r}") from exc

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str | None, queue: str) -> None:
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with self._table_lock(exchange):
            table = self._table_to_change(exchange)
            if binding not in table:
                table.insert(0, binding)
                self._write_table(exchange, table)

    def _delete(
        self,
        queue: str,
        exchange: str,
        routing_key: str,
        pattern: str | None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        # what the virtual channel keeps in memory; the table file is ours to change
        super(filesystem.Channel, self)._delete(
            queue, exchange, routing_key, pattern, *args, **kwargs
        )
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with self._table_lock(exchange):
            table = self._table_to_change(exchange)
            if binding in table:
                table.remove(binding)
                self._write_table(exchange, table)

    @contextlib.contextmanager
    def _table_lock(self, exchange: str) -> Iterator[None]:
        """One process at a time changes a table (read, change, replace): a lock on a file
        of its own, since the table file itself is replaced by every change."""
        file = self._exchange_file(exchange)
        self.control_folder.mkdir(parents=True, exist_ok=True)
        try:
            handle = open(file.with_name(file.name + ".lock"), "ab")  # noqa: SIM115
        except OSError as exc:
            raise ChannelError(f"Cannot open the lock of {file}") from exc
        try:
            filesystem.lock(handle, filesystem.LOCK_EX)
            try:
                yield
            finally:
                filesystem.unlock(handle)
        finally:
            handle.close()

    def _table_to_change(self, exchange: str) -> list[filesystem.exchange_queue_t]:
        try:
            return self.get_table(exchange)
        except UnreadableTable as exc:
            # the bindings it held are declared again by whoever consumes them when it starts
            log.warning("%s; writing it anew", exc)
            return []

    def _write_table(self, exchange: str, table: list[filesystem.exchange_queue_t]) -> None:
        file = self._exchange_file(exchange)
        _write_atomically(str(file), str_to_bytes(dumps(table)), what=f"exchange table {file}")


class EmbeddedTransport(filesystem.Transport):
    """kombu's filesystem transport with :class:`EmbeddedChannel`."""

    Channel = EmbeddedChannel


def _write_atomically(path: str, data: bytes, *, what: str) -> None:
    """Write ``data`` under a hidden name beside ``path``, then rename it to ``path``: a reader
    sees no file or the whole of it, never a part."""
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.{uuid.uuid4().hex}{_WRITING}")
    try:
        with open(temporary, "xb") as f:
            f.write(data)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise ChannelError(f"Cannot write the {what} to {folder!r}") from exc


# --- wiring: what the Celery app factory and the CLI call ------------------------------------


def embedded_broker_options(settings: Settings) -> dict[str, Any]:
    """Celery settings that select this transport when the broker is the embedded one
    (``filesystem://``); nothing for any other broker."""
    if not settings.embedded_broker:
        return {}
    return {"broker_transport": EMBEDDED_TRANSPORT}


def declare_embedded_queues(app: Celery) -> list[str]:
    """Declare the app's queues, their exchanges and bindings on the embedded broker: once,
    before any process publishes or consumes, so that no message depends on who started first.
    Does nothing (and returns []) when the app's broker is not the embedded one."""
    if app.conf.broker_transport != EMBEDDED_TRANSPORT:
        return []
    queues = list(app.amqp.queues.values())
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in queues:
            queue.bind(channel).declare()
    return [queue.name for queue in queues]
