"""The agent under systemd (Type=notify): READY=1 once it has reconciled, STATUS= lines saying
what this host holds, STOPPING=1 when it stops, and WATCHDOG=1 pings only while it is alive.

Alive means both:

- the event loop runs: the pings are sent by a task on it, so a blocked loop sends none;
- the manager answers: a heartbeat submitted to the agent's worker (the thread that makes every
  Manager call) takes the Manager's lock and returns.  One that has been waiting longer than
  the watchdog's timeout (WATCHDOG_USEC) while the worker finished no call either means a call
  stuck in the worker, or a lock held by a wedged thread (a consequence, a monitor): the pings
  stop, and systemd restarts the agent.  A backlog of calls that each finish is alive; a single
  change that legitimately takes longer than that (slow commands) is not: WatchdogSec must
  exceed the longest change.

The heartbeat also reads what is held (on the worker thread: the loop never waits for a lock),
which becomes the STATUS= line.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Callable

from floatingip.manager import Manager
from floatingip.notify import Notifier
from floatingip.worker import Worker

__all__ = ["Liveness", "describe"]

logger = logging.getLogger(__name__)

MAX_TICK = 1.0  # seconds between looks at the heartbeat (and STATUS= updates)


def describe(manager: Manager) -> str:
    """What this host holds, for ``systemctl status``."""
    held = manager.held
    if held:
        what = ", ".join(
            f"{service} ({_address(manager, service)}) for {datasource}"
            for service, datasource in sorted(held.items())
        )
        text = f"holds {what}"
    else:
        text = "holds no VIP"
    text += f"; policy {manager.policy}"
    if problems := manager.problems:
        text += "; failing: " + ", ".join(sorted(problems))
    return text


def _address(manager: Manager, service: str) -> str:
    target = manager.services[service].target
    return target.address_text or "address unknown"


class Liveness:
    """Readiness, status and watchdog pings for one agent (nothing if not under systemd)."""

    def __init__(
        self, notifier: Notifier, worker: Worker, manager: Callable[[], Manager | None], name: str
    ) -> None:
        self.notifier = notifier
        self._worker = worker
        self._manager = manager
        self._name = name  # "cluster demo, host db1"
        self._asked = time.monotonic()  # when the pending heartbeat was submitted
        self._described = ""
        self._sent_status = ""
        self._pending: concurrent.futures.Future[None] | None = None
        self._ready = False
        self._task: asyncio.Task[None] | None = None
        self.pings = 0

    def start(self, status: str) -> None:
        """Say ``status`` and start the pings (on the running loop)."""
        if not self.notifier.enabled:
            return
        self._say(status)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="systemd notify")

    def ready(self) -> None:
        """The first reconcile is done: READY=1, with what is held."""
        self._ready = True
        manager = self._manager()
        self._described = describe(manager) if manager is not None else ""
        self._sent_status = self._status()
        self.notifier.ready(self._sent_status)

    def stopping(self) -> None:
        self._ready = False
        self.notifier.stopping(f"{self._name}: stopping, releasing this host's VIPs")

    async def close(self, ok: bool) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._say("stopped" if ok else "stopped with errors (see the journal)")
        self.notifier.close()

    # -- the loop's task ----------------------------------------------------------------------

    def alive(self, now: float) -> bool:
        """No heartbeat has waited longer than the watchdog's timeout while the worker made no
        progress (the loop is alive: it asks; after the loop itself stalled, a heartbeat asked
        just now counts as answered).  A backlog of changes that each finish is alive, however
        long it is; one call stuck longer than the timeout is not."""
        limit = 2 * (self.notifier.watchdog_interval or MAX_TICK)
        waiting = self._pending is not None and not self._pending.done()
        return not waiting or now - max(self._asked, self._worker.progressed) <= limit

    async def _run(self) -> None:
        interval = self.notifier.watchdog_interval
        tick = min(MAX_TICK, interval / 2) if interval is not None else MAX_TICK
        next_ping = time.monotonic()
        while True:
            now = time.monotonic()
            self._beat()
            if interval is not None and now >= next_ping:
                if self.alive(now):
                    self.notifier.watchdog()
                    self.pings += 1
                    next_ping = now + interval
                else:
                    logger.error(
                        "no WATCHDOG=1 ping: the manager has not answered for %.0f s",
                        now - max(self._asked, self._worker.progressed),
                    )
                    next_ping = now + interval  # logged once per interval, not per tick
            if self._ready and self._status() != self._sent_status:
                self._sent_status = self._status()
                self.notifier.status(self._sent_status)
            await asyncio.sleep(tick)

    def _beat(self) -> None:
        if self._pending is None or self._pending.done():
            self._asked = time.monotonic()
            self._pending = self._worker.submit("liveness heartbeat", self._heartbeat)

    def _heartbeat(self) -> None:
        """On the worker thread: take the Manager's lock, read what is held."""
        manager = self._manager()
        if manager is not None:
            # The lock every change holds: a thread wedged in one keeps this waiting.
            with manager._lock:
                pass
            self._described = describe(manager)

    def _status(self) -> str:
        return f"{self._name}: {self._described}" if self._described else self._name

    def _say(self, status: str) -> None:
        self.notifier.status(f"{self._name}: {status}")
