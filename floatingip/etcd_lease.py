"""The agent's etcd lease, kept alive on this process's own clock.

The lease is kept with unary keepalives, each with its own deadline, every TTL/5.  A watch cannot
tell a frozen or partitioned etcd from a quiet one, so nothing rests on it: the deadline is timed
on this process's monotonic clock from the moment the last successful keepalive was *sent* (etcd
restarts the lease's clock on receipt, later).  If no keepalive has succeeded for TTL - margin, a
watchdog thread calls ``on_lost`` at once, before etcd can have expired the lease and let another
host take what it guarded.  ``current()`` tells the fence how much of that time remains.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from floatingip.errors import UsageError

# asyncio and etcd_client (with aetcd) are imported where a lease is kept, not here: the command
# line imports this module for MIN_TTL, and asyncio was half its start-up (16 of 27 ms).  Whoever
# builds a LeaseKeeper has built an EtcdPool, so they are loaded by then.
if TYPE_CHECKING:
    from floatingip.etcd_client import EtcdPool

__all__ = ["DEFAULT_TTL", "MIN_TTL", "LeaseKeeper"]

logger = logging.getLogger(__name__)

# 5 s: a leader election (1-2 s measured) and a lost keepalive never cause a false drop, and an
# unplanned failover (a host or agent dies) takes about TTL plus the duplicate address check.
DEFAULT_TTL = 5
# A start is granted only while the margin (at least 1 s) is left before the drop deadline,
# TTL - margin after a renewal: at 2 s that is never so, at 3 s a renewal (every TTL/5) keeps it so.
MIN_TTL = 3
# The watchdog sleeps until the deadline, but never longer than this: a lease granted or renewed
# meanwhile only moves the deadline later.
WATCHDOG_NAP = 0.5


class LeaseKeeper:
    """One lease at a time: granted when there is none, renewed by ``renew()`` (call it every
    ``period``), dropped through ``on_lost(reason)`` once per lease when its deadline passes."""

    def __init__(
        self,
        pool: EtcdPool,
        *,
        ttl: int = DEFAULT_TTL,
        on_lost: Callable[[str], None] | None = None,
        on_recovered: Callable[[], None] | None = None,
    ) -> None:
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not MIN_TTL <= ttl <= 3600:
            raise UsageError(
                f"the lease TTL must be whole seconds in {MIN_TTL}-3600 (at least {MIN_TTL}: "
                f"a start needs a margin of 1 s before the drop deadline), not {ttl!r}"
            )
        self.pool = pool
        self.ttl = ttl
        self._on_lost = on_lost
        self._on_recovered = on_recovered
        self._lock = threading.Lock()
        self._renewed = threading.Condition(self._lock)  # notified on each grant and renewal
        self._lease: int | None = None  # the current lease's id
        self._granted = ttl  # what etcd granted (it may raise a requested TTL)
        self._last_ok = 0.0  # monotonic time the last successful grant/keepalive was sent
        self._lost = False  # on_lost ran for the current lease
        self._failures = 0  # keepalives failed in a row
        self._stopped = threading.Event()
        self.losses = 0
        self._watchdog = threading.Thread(
            target=self._watch_deadline, name="floatingip-fence-watchdog", daemon=True
        )

    @property
    def margin(self) -> float:
        """Time kept between the drop and the earliest lease expiry: the watchdog's tick, the
        stop command, a loaded machine."""
        return max(1.0, 0.3 * self._granted)

    @property
    def period(self) -> float:
        return self._granted / 5

    @property
    def call_timeout(self) -> float:
        return min(1.0, self._granted / 5)

    def current(self, wait: float = 0.0) -> tuple[int | None, float]:
        """The live lease (None: none) and the seconds left before its drop deadline.  With
        ``wait``, a live lease short of the margin is given up to that long to be renewed (a
        renewal a little late on a loaded machine need not refuse a start)."""
        until = time.monotonic() + wait
        with self._renewed:
            while True:
                remaining = self._remaining()
                left = until - time.monotonic()
                if self._lease is None or remaining >= self.margin or left <= 0:
                    return self._lease, remaining
                self._renewed.wait(left)

    def _remaining(self) -> float:
        """Seconds until the drop deadline (<= 0: past it); the caller holds the lock."""
        if self._lease is None or self._lost:
            return 0.0
        return self._last_ok + self._granted - self.margin - time.monotonic()

    def start(self) -> None:
        self._watchdog.start()

    async def renew(self) -> None:
        """Grant or renew once; a failure is counted and logged, never raised."""
        from floatingip.etcd_client import EtcdError

        try:
            await self._keep()
        except EtcdError as exc:
            self._failures += 1
            if self._failures == 1 or self._failures % 20 == 0:
                logger.error("lease keepalive failed (%d in a row): %s", self._failures, exc)
            return
        if self._failures:
            logger.warning("etcd reachable again after %d failed attempt(s)", self._failures)
            self._failures = 0
            if self._on_recovered is not None:
                self._on_recovered()

    async def _keep(self) -> None:
        import asyncio

        with self._lock:
            lease = self._lease
        sent = time.monotonic()
        if lease is None:
            granted = await self.pool.call(
                "lease grant", lambda client: client.lease(self.ttl), timeout=self.call_timeout
            )
            with self._lock:
                self._lease, self._granted = int(granted.id), max(int(granted.ttl), 1)
                self._last_ok, self._lost = sent, False
                self._renewed.notify_all()
            logger.info(
                "lease %x granted, TTL %d s (asked %d s); the VIP is dropped after %.1f s "
                "without a renewal",
                granted.id, granted.ttl, self.ttl, self._granted - self.margin,
            )  # fmt: skip
            return
        reply = await self.pool.call(
            "lease keepalive",
            lambda client: client.refresh_lease(lease),
            timeout=self.call_timeout,
        )
        if reply is None or int(reply.TTL) <= 0:
            # in a thread: on_lost runs stop commands, which must not stall the event loop (the
            # fence's calls and the watch run on it)
            await asyncio.to_thread(self._lose, lease, "etcd says the lease has expired")
            return
        with self._lock:
            if self._lease == lease and not self._lost:
                self._last_ok = sent
                self._renewed.notify_all()

    def _watch_deadline(self) -> None:
        nap = 0.0
        while not self._stopped.wait(nap):
            with self._lock:
                lease = self._lease
                live = lease is not None and not self._lost
                remaining = self._remaining()
            if live and lease is not None and remaining <= 0:
                self._lose(lease, f"no lease renewal for {self._granted - self.margin:.1f} s")
            # Wake at the deadline, not on a fixed tick (20 wake-ups a second were 40% of an
            # idle agent's CPU); a renewal meanwhile only moves the deadline later.  No live
            # lease: nothing to watch until one is granted.
            nap = min(max(remaining, 0.001), WATCHDOG_NAP) if live else WATCHDOG_NAP

    def _lose(self, lease: int, reason: str) -> None:
        """Drop the VIPs (on_lost) once per lease, then forget it: the keeper grants another."""
        with self._lock:
            if self._lease != lease or self._lost:
                return
            self._lost = True
            self.losses += 1
        logger.error("lease %x lost (%s): dropping this host's VIPs now", lease, reason)
        try:
            if self._on_lost is not None:
                self._on_lost(reason)
        except Exception:
            logger.exception("dropping the VIPs after the lease was lost")
        finally:
            with self._lock:
                if self._lease == lease:
                    self._lease = None

    async def revoke(self) -> None:
        """Stop the watchdog and revoke the lease (what is attached to it goes with it)."""
        from floatingip.etcd_client import EtcdError

        self._stopped.set()
        with self._lock:
            lease, self._lease = self._lease, None
        if lease is not None:
            try:
                await self.pool.call(
                    "lease revoke",
                    lambda client: client.revoke_lease(lease),
                    timeout=self.call_timeout,
                )
                logger.info("lease %x revoked", lease)
            except EtcdError as exc:
                logger.error("lease not revoked (it expires in %d s): %s", self._granted, exc)
