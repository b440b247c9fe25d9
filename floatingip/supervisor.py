"""The background duties of a manager: retries with bounded backoff, and the periodic monitor;
and the bookkeeping of retries (each service's last failure and attempts so far).

One thread per manager, sleeping until the next retry or monitor check is due.  It only calls
back into the manager, which takes its own lock, so a retry never runs in the middle of a change.
The manager starts it once it is fully built (retries scheduled before then wait for it) and
stops it if building fails.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from floatingip.errors import UsageError
from floatingip.validation import MAX_INTERVAL, check_instance, check_interval, check_seconds

__all__ = ["DEFAULT_MONITOR_INTERVAL", "Retries", "RetryPolicy", "Supervisor"]

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
        initial = check_seconds(self.initial, "retry initial delay", minimum=0.001, zero=False)
        maximum = check_seconds(self.maximum, "retry maximum delay", minimum=0.001, zero=False)
        check_instance(self.attempts, int, "retry attempts", "a whole number")
        if maximum < initial or self.attempts < 0:
            raise UsageError(
                f"invalid retry policy {self}: the maximum delay must be at least the initial "
                "one, and attempts 0 (no retries) or more"
            )

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        doublings = min(max(attempt - 1, 0), 64)  # the maximum is reached long before
        return float(min(self.maximum, self.initial * 2**doublings))


class Supervisor:
    """Calls ``on_retry(key)`` when a scheduled retry is due and ``on_monitor()`` every
    ``interval`` seconds (0: never); exceptions are logged, never raised into the thread.
    Nothing is called before :meth:`start` (nor after :meth:`stop`)."""

    def __init__(
        self,
        *,
        interval: float,
        on_retry: Callable[[str], None],
        on_monitor: Callable[[], None],
        name: str,
    ) -> None:
        interval = check_interval(interval)
        self.interval = interval
        self._on_retry = on_retry
        self._on_monitor = on_monitor
        self._name = name
        self._due: dict[str, float] = {}
        self._next_monitor: float | None = None
        self._condition = threading.Condition()
        self._started = False
        self._stopped = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """From now on, run what is due (a thread only once there is something to do)."""
        with self._condition:
            if self._started:
                return
            self._started = True
            if self.interval:
                self._next_monitor = time.monotonic() + self.interval
            if self.interval or self._due:
                self._start()

    def _start(self) -> None:
        if self._thread is None and self._started and not self._stopped:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def schedule(self, key: str, delay: float) -> None:
        with self._condition:
            self._due[key] = time.monotonic() + min(delay, MAX_INTERVAL)
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
                    # bounded: a wait past threading.TIMEOUT_MAX raises OverflowError
                    self._condition.wait(
                        None if deadline is None else min(deadline - now, MAX_INTERVAL)
                    )
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


class Retries:
    """Each service's last failure until it next succeeds, and its retries, scheduled on the
    ``supervisor`` with ``policy``'s backoff (the supervisor then calls its ``on_retry``)."""

    def __init__(self, policy: RetryPolicy, supervisor: Supervisor) -> None:
        self.policy = policy
        self._supervisor = supervisor
        self._lock = threading.Lock()
        self._problems: dict[str, str] = {}  # service -> its last failure, until it succeeds
        self._attempts: dict[str, int] = {}  # service -> retries so far

    def succeeded(self, service: str) -> None:
        with self._lock:
            self._problems.pop(service, None)
            self._attempts.pop(service, None)
        self._supervisor.cancel(service)

    def failed(self, service: str, problem: str) -> bool:
        """Record ``problem`` and schedule the next retry; False once the retries are used up."""
        with self._lock:
            self._problems[service] = problem
            attempt = self._attempts.get(service, 0) + 1
            if attempt > self.policy.attempts:
                return False
            self._attempts[service] = attempt
        self._supervisor.schedule(service, self.policy.delay(attempt))
        return True

    def note(self, service: str, problem: str) -> None:
        """Record ``problem`` as the service's last failure, without a retry."""
        with self._lock:
            self._problems[service] = problem

    def attempt(self, service: str) -> int:
        """The retries of ``service`` so far."""
        with self._lock:
            return self._attempts.get(service, 0)

    def problems(self) -> dict[str, str]:
        """Each service's last failure, with its retry state."""
        pending = self._supervisor.pending()
        attempts = self.policy.attempts
        with self._lock:
            shown = {}
            for service, message in self._problems.items():
                tried = self._attempts.get(service, 0)
                if service in pending:
                    message += f" (retry {tried}/{attempts} in {pending[service]:.0f}s)"
                elif tried >= attempts and attempts:
                    message += f" (gave up after {tried} retries; a new change retries)"
                shown[service] = message
            return shown
