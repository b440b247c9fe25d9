"""The background duties of a manager: retries with bounded backoff, and the periodic monitor.

One thread per manager, sleeping until the next retry or monitor check is due.  It only calls
back into the manager, which takes its own lock, so a retry never runs in the middle of a change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DEFAULT_MONITOR_INTERVAL", "RetryPolicy", "Supervisor"]

logger = logging.getLogger(__name__)

DEFAULT_MONITOR_INTERVAL = 10.0


@dataclass(frozen=True)
class RetryPolicy:
    """A failed command is retried after ``initial`` seconds, doubling up to ``maximum``, at
    most ``attempts`` times; then the manager gives up until the next change (0: no retries)."""

    initial: float = 1.0
    maximum: float = 30.0
    attempts: int = 5

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.attempts < 0:
            raise ValueError(f"invalid retry policy: {self}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        return float(min(self.maximum, self.initial * 2 ** (attempt - 1)))


class Supervisor:
    """Calls ``on_retry(key)`` when a scheduled retry is due and ``on_monitor()`` every
    ``interval`` seconds (0: never); exceptions are logged, never raised into the thread."""

    def __init__(
        self,
        *,
        interval: float,
        on_retry: Callable[[str], None],
        on_monitor: Callable[[], None],
        name: str,
    ) -> None:
        if interval < 0:
            raise ValueError(f"monitor interval must be 0 (off) or positive, not {interval!r}")
        self.interval = interval
        self._on_retry = on_retry
        self._on_monitor = on_monitor
        self._name = name
        self._due: dict[str, float] = {}
        self._next_monitor = time.monotonic() + interval if interval else None
        self._condition = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        if interval:
            self._start()

    def _start(self) -> None:
        if self._thread is None and not self._stopped:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def schedule(self, key: str, delay: float) -> None:
        with self._condition:
            self._due[key] = time.monotonic() + delay
            self._start()
            self._condition.notify()

    def cancel(self, key: str) -> None:
        with self._condition:
            self._due.pop(key, None)

    def pending(self) -> dict[str, float]:
        """Seconds until each scheduled retry."""
        now = time.monotonic()
        with self._condition:
            return {key: max(0.0, due - now) for key, due in self._due.items()}

    def stop(self, timeout: float = 10.0) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _next_deadline(self) -> float | None:
        deadlines = list(self._due.values())
        if self._next_monitor is not None:
            deadlines.append(self._next_monitor)
        return min(deadlines) if deadlines else None

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._stopped:
                    deadline = self._next_deadline()
                    now = time.monotonic()
                    if deadline is not None and deadline <= now:
                        break
                    self._condition.wait(None if deadline is None else deadline - now)
                if self._stopped:
                    return
                now = time.monotonic()
                due = [key for key, at in self._due.items() if at <= now]
                for key in due:
                    del self._due[key]
                monitor = self._next_monitor is not None and self._next_monitor <= now
                if monitor:
                    self._next_monitor = now + self.interval
            for key in due:
                self._call(self._on_retry, key)
            if monitor:
                self._call(self._on_monitor)

    def _call(self, function: Callable[..., None], *args: str) -> None:
        try:
            function(*args)
        except Exception:
            logger.exception("%s failed", self._name)
