"""MLLP (the Minimal Lower Layer Protocol of HL7 v2 over TCP): frames ``0x0B message 0x1C 0x0D``,
one ACK frame answered per message frame, many messages per connection, many connections at
once (asyncio; each message is handled in a worker thread, since storing it is blocking I/O).

The framing is forgiving of what real senders do: bytes before a frame's start byte are
dropped; a frame longer than ``max_frame`` is answered by ``too_large`` (an AR) once its end
arrives, and its bytes are not kept meanwhile; a frame whose content is garbage is the
handler's to answer (with an AR), never a reason to drop the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

START = b"\x0b"
END = b"\x1c\x0d"

log = logging.getLogger(__name__)


def frame(message: bytes) -> bytes:
    return START + message + END


@dataclass
class Frame:
    content: bytes
    oversized: bool = False  # longer than max_frame: content is empty, the frame was dropped


class FrameReader:
    """Bytes in, whole frames out."""

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self.buffer = bytearray()
        self.inside = False
        self.oversized = False

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        self.buffer += data
        while True:
            if not self.inside:
                start = self.buffer.find(START)
                if start == -1:
                    # no frame has started: keep only a possible half of an end marker
                    end = self.buffer.find(END)
                    if end != -1:  # an end without a start: what came before is a garbled frame
                        frames.append(Frame(bytes(self.buffer[:end])))
                        del self.buffer[: end + len(END)]
                        continue
                    del self.buffer[: max(0, len(self.buffer) - 1)]
                    return frames
                del self.buffer[: start + 1]
                self.inside, self.oversized = True, False
            end = self.buffer.find(END)
            if end == -1:
                if len(self.buffer) > self.max_frame:
                    # too long: drop what came, keep watching for the end
                    self.oversized = True
                    del self.buffer[: max(0, len(self.buffer) - 1)]
                return frames
            content = bytes(self.buffer[:end])
            del self.buffer[: end + len(END)]
            self.inside = False
            if self.oversized or len(content) > self.max_frame:
                frames.append(Frame(b"", oversized=True))
            else:
                frames.append(Frame(content))


Handler = Callable[[Frame, str], bytes]  # (frame, peer address) -> the ACK's bytes


class MllpServer:
    """Serve ``handler`` over MLLP on host:port until :meth:`stop` (SIGTERM, SIGINT)."""

    def __init__(self, handler: Handler, host: str, port: int, max_frame: int) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.max_frame = max_frame
        self.connections: set[asyncio.Task[None]] = set()
        self.stopping: asyncio.Event | None = None

    async def serve(self, ready: Callable[[str, int], None] | None = None) -> None:
        self.stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, self.stopping.set)
        server = await asyncio.start_server(self._connection, self.host, self.port)
        bound = server.sockets[0].getsockname()
        if ready is not None:
            ready(str(bound[0]), int(bound[1]))
        async with server:
            await self.stopping.wait()
            server.close()  # no new connections; those open finish the messages in hand
            if self.connections:
                await asyncio.wait(self.connections, timeout=30)

    def stop(self) -> None:
        if self.stopping is not None:
            self.stopping.set()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - always inside a task here
        self.connections.add(task)
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        frames = FrameReader(self.max_frame)
        assert self.stopping is not None  # noqa: S101 - serve() set it before accepting
        stopped = asyncio.ensure_future(self.stopping.wait())
        try:
            while True:
                # waiting for bytes ends with a stop; handling a message that came does not
                reading = asyncio.ensure_future(reader.read(65536))
                await asyncio.wait({reading, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not reading.done():
                    reading.cancel()
                    break
                data = reading.result()
                if not data:
                    break
                for item in frames.feed(data):
                    answer = await asyncio.to_thread(self.handler, item, address)
                    writer.write(frame(answer))
                    await writer.drain()
        except (ConnectionError, OSError) as exc:
            log.info("mllp: connection from %s ended: %s", address, exc)
        finally:
            stopped.cancel()
            self.connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
                await writer.wait_closed()
