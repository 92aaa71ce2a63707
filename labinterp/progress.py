"""Progress of a long CLI command: a live bar on a terminal, plain periodic lines otherwise
(a log file or CI reads those; a bar's redraws would fill it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class CommandProgress:
    """Reports ``done`` bytes of ``total`` (None: unknown, no ETA) with a caption of counts
    that the command words (``12,000 rows, 3,000 panels, 950 panels/s``); ``items``: done and
    total are counts of things (panels), not bytes."""

    def __init__(
        self,
        stream: TextIO,
        total: int | None,
        every_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        items: bool = False,
    ):
        self._stream = stream
        self._total = total
        self._every = every_seconds
        self._clock = clock
        self._started = clock()
        self._last_line = self._started
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._items = items
        if stream.isatty():
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn() if items else DownloadColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(file=stream),
                transient=False,
            )

    def __enter__(self) -> CommandProgress:
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task("starting", total=self._total)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def elapsed(self) -> float:
        return max(self._clock() - self._started, 1e-9)

    def update(
        self,
        done: int,
        caption: str,
        detail: str = "",
        *,
        final: bool = False,
        total: int | None = None,
    ) -> None:
        """``caption`` beside the bar (keep it short: the bar needs the room), ``detail``
        after it on the plain lines; ``total``: the total is known now (or has changed)."""
        if total is not None:
            self._total = total
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, description=caption, total=self._total)
            return
        now = self._clock()
        if final or now - self._last_line >= self._every:
            self._last_line = now
            whole = "" if self._items else " of the input"
            share = "" if not self._total else f", {100 * done / self._total:.0f}%{whole}"
            print(f"{caption}{share}{detail}", file=self._stream, flush=True)
