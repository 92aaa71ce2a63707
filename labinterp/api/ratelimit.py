"""A fixed-window request limit per token.

With a Redis broker the counters live in Redis, shared by every API process on every
machine; on the embedded default each API process counts for itself (so the limit there is
per process). If Redis does not answer, counting falls back to the process: a limiter outage
never holds a request up for long (one try, half a second at most, no client retries).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from labinterp.api.problems import Problem


class Limiter:
    def __init__(self) -> None:
        self.per_minute = 0
        self._redis: Any = None
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}

    def configure(self, per_minute: int, redis_url: str | None) -> None:
        self.per_minute = per_minute
        self._redis = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(
                redis_url, socket_timeout=0.5, socket_connect_timeout=0.5, retry=None
            )

    def hit(self, key: str) -> None:
        if self.per_minute <= 0:
            return
        window = int(time.time() // 60)
        count = self._count(key, window)
        if count > self.per_minute:
            retry = 60 - int(time.time() % 60)
            raise Problem(
                429,
                f"more than {self.per_minute} requests in a minute for this token; "
                f"retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )

    def _count(self, key: str, window: int) -> int:
        if self._redis is not None:
            try:
                name = f"labinterp:rate:{key}:{window}"
                pipe = self._redis.pipeline()
                pipe.incr(name)
                pipe.expire(name, 120)
                return int(pipe.execute()[0])
            except Exception:  # a limiter outage must not take the API down
                pass
        with self._lock:
            self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
            self._counts[(key, window)] = self._counts.get((key, window), 0) + 1
            return self._counts[(key, window)]


limiter = Limiter()
