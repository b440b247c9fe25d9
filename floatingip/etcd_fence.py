"""The lease-backed VIP lock on etcd: the fence of the distributed mode.

A host may hold a service's VIP only while it holds ``/floatingip/<cluster>/service/<service>/
holder``, a key created in a transaction that succeeds only if it is absent, attached to the
agent's lease (kept by floatingip.etcd_lease, which calls ``on_lost`` to drop the VIP before etcd
can have expired the lease).  A start is granted only while at least the lease's ``margin`` of
that time remains, so a start and the drop cannot cross.

Planned and unplanned moves differ by a record, ``.../service/<service>/released``.  A release
after a confirmed stop deletes the holder key and writes that record in one transaction; taking
the lock reads and deletes it in the transaction that creates the key.  So the record exists
only while the last holder's lifetime ended in a clean release: the new holder is told the lock
was ``vacated`` and skips the duplicate address check.  A lock freed by an expired lease (the
holder died, or froze: its kernel may still answer for the VIP), one given back by ``abandon``,
or the first lock ever, has no record, and the check runs.

``acquire`` and ``release`` are called from the Manager's threads and run on the agent's event
loop with a bound; they never raise: any doubt is a refusal (fail closed).  A start whose lock
request got no answer (or whose grant came too late, ``_Call``) may have been taken by etcd: it
is refused, and exactly what it wrote (compared by value) is deleted once etcd answers, unless
a later start took the lock.

The agent's check of held VIPs (``held_elsewhere``) takes again the lock of a VIP held here,
under the service's lock (Manager.while_held), so no stop of it overlaps; the emergency drop
after a lost lease takes no lock, so until a start is granted again the check only reads
(see ``_may_retake``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from floatingip.cluster_state import (
    ClusterStateError,
    holder_key,
    holder_value,
    parse_holder,
    parse_released,
    released_key,
)
from floatingip.etcd_client import EtcdError, EtcdPool
from floatingip.etcd_lease import DEFAULT_TTL, LeaseKeeper
from floatingip.etcd_unlock import Deletion, delete_lock, merged
from floatingip.fence import FenceAnswer

__all__ = ["DEFAULT_TTL", "EtcdFence"]

logger = logging.getLogger(__name__)


@dataclass
class _Call:
    """One acquire between its caller and its coroutine (which may need longer than the
    caller's bound), both under ``EtcdFence._lock``: a start's grant the caller did not take
    is deleted, by the coroutine if it finishes after the caller gave up, else by the caller."""

    gave_up: bool = False
    granted: bytes | None = None  # the value a start's grant wrote
    voided: Deletion | None = None  # the pending deletion that grant voided


class EtcdFence:
    """The Fence protocol (floatingip.fence) on an etcd lease.  ``run()`` is the keeper
    coroutine (start it in ``loop``); ``on_lost(reason)`` must drop this host's VIPs at once;
    call ``close()`` (a coroutine) to release and revoke on the way out."""

    def __init__(
        self,
        pool: EtcdPool,
        cluster: str,
        host: str,
        *,
        loop: asyncio.AbstractEventLoop,
        ttl: int = DEFAULT_TTL,
        on_lost: Callable[[str], None] | None = None,
        on_recovered: Callable[[], None] | None = None,
    ) -> None:
        self.keeper = LeaseKeeper(pool, ttl=ttl, on_lost=self._lost, on_recovered=on_recovered)
        self._on_lost = on_lost
        self.pool = pool
        self.cluster = cluster
        self.host = host
        self.ttl = ttl
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: dict[str, Deletion] = {}  # deletions etcd did not take yet
        # what the check of held VIPs may take again (see _may_retake): after a lost lease, only
        # the services granted to a start since
        self._lost_once = False
        self._started: set[str] = set()
        self._serials: dict[str, asyncio.Lock] = {}  # on the loop: see _serial
        self._others: dict[str, str] = {}  # service -> the other host seen holding its lock
        self._closing = False

    @property
    def period(self) -> float:
        return self.keeper.period

    @property
    def losses(self) -> int:
        return self.keeper.losses

    @property
    def call_timeout(self) -> float:
        return self.keeper.call_timeout

    # -- the Fence protocol (from Manager threads) ------------------------------------------

    def acquire(self, service: str, *, host: str, datasource: str | None) -> FenceAnswer:
        return self._ask(service, host, datasource, start=True)

    def held_elsewhere(self, service: str) -> str | None:
        """The other host that holds ``service``'s lock, if etcd says one does (None: ours,
        free, or etcd cannot tell now).  For the check of a VIP held here, called under its
        service's lock (Manager.while_held): its lock is taken (again) if free or ours from an
        earlier lease, unless the lease was lost since its last start (``_may_retake``)."""
        self._ask(service, self.host, None, start=False)
        return self._others.get(service)

    def _ask(self, service: str, host: str, datasource: str | None, *, start: bool) -> FenceAnswer:
        with self._lock:  # only what this call reads counts (held_elsewhere)
            self._others.pop(service, None)
        try:
            if host != self.host:
                return FenceAnswer(
                    granted=False, reason=f"this agent fences host {self.host!r}, not {host!r}"
                )
            lease, remaining = self.keeper.current(wait=self.keeper.period)
            if lease is None or remaining < self.keeper.margin:
                return FenceAnswer(
                    granted=False,
                    reason="no live etcd lease (etcd unreachable or the lease just renewed): "
                    "a VIP is never taken without one",
                )
            call = _Call()
            answer = self._on_loop(
                self._acquire(service, datasource, lease, start, call), "acquire"
            )
            if not answer.granted:
                with self._lock:
                    call.gave_up = True
                    if call.granted is not None:  # granted after the caller stopped waiting
                        self._queue(service, call.voided)
                        self._queue(service, Deletion(False, only=(call.granted,)))
            return answer
        except Exception as exc:  # must never raise: refuse
            logger.exception("fence acquire of %s", service)
            return FenceAnswer(granted=False, reason=f"fence error: {exc!r}")

    def release(self, service: str, *, host: str) -> None:
        """``service``'s VIP is confirmed gone: delete the lock and record a clean release."""
        self._let_go(service, clean=True)

    def abandon(self, service: str, *, host: str) -> None:
        """Give back a lock whose start did not run (a later fence refused): the lock goes,
        but no clean release is recorded, so the next holder runs its own check."""
        self._let_go(service, clean=False)

    def _let_go(self, service: str, *, clean: bool) -> None:
        try:
            with self._lock:
                self._pending[service] = Deletion(clean)  # the whole lock, whoever wrote it
            answer = self._on_loop(self._release_pending(), "release")
            if not answer.granted:
                logger.warning("%s: lock not released yet (%s); retried", service, answer.reason)
        except Exception:
            logger.exception("fence release of %s", service)

    def _on_loop(self, coroutine: Any, what: str) -> FenceAnswer:
        bound = 2 * self.call_timeout + 0.5
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            answer: FenceAnswer = future.result(timeout=bound)
            return answer
        except FutureTimeout:
            future.cancel()
            return FenceAnswer(granted=False, reason=f"etcd {what}: no answer within {bound:g} s")

    # -- etcd requests (on the loop) -----------------------------------------------------------

    def _serial(self, service: str) -> asyncio.Lock:
        """One request of a service at a time on the loop: the keeper's retried release must
        not delete a key that an acquire has just granted again."""
        lock = self._serials.get(service)
        if lock is None:
            lock = self._serials[service] = asyncio.Lock()
        return lock

    def _may_retake(self, service: str) -> bool:
        """Whether the check of held VIPs may create or move ``service``'s lock (the caller
        holds ``_lock``): not after a lost lease until a start is granted it again.

        Invariant: the check takes a lock only for a VIP held when its etcd request runs.
        Against a stop, the service's lock sees to it: the check reads "held" and asks under
        it, and a stop releases and marks the VIP not held under it.  The drop after a lost
        lease takes no lock (a wedged command may hold it), so the loss is marked here before
        the VIPs are dropped, and no new lease exists before the drop returns: a check that
        read "held" before the drop finds the mark and only reads, and what it wrote on the
        lost lease dies with it.  A start asks before its VIP goes up: its grant lifts the
        mark.  (A VIP back after a loss without a start keeps no lock; no release is recorded
        after a loss, so the next holder's duplicate address check finds it.)"""
        return not self._lost_once or service in self._started

    def _lost(self, reason: str) -> None:
        with self._lock:  # the VIPs are being dropped: see _may_retake
            self._lost_once = True
            self._started.clear()
        if self._on_lost is not None:
            self._on_lost(reason)

    async def _acquire(
        self, service: str, datasource: str | None, lease: int, start: bool, call: _Call
    ) -> FenceAnswer:
        async with self._serial(service):
            with self._lock:
                retake = start or self._may_retake(service)
            if not retake:
                return await self._look(service)
            value = holder_value(self.host, datasource)
            answer = await self._acquire_now(service, value, lease, start)
            if not answer.granted:
                return answer
            with self._lock:  # a start, or a check of a VIP held here now
                if call.gave_up:  # no VIP follows: a start's lock goes (a check's VIP is held)
                    if start:
                        self._queue(service, Deletion(False, only=(value,)))
                    return FenceAnswer(granted=False, reason="granted after the caller gave up")
                call.voided = self._pending.pop(service, None)  # taken again: void
                if start:
                    self._started.add(service)
                    call.granted = value
            return answer

    def _queue(self, service: str, deletion: Deletion | None) -> None:
        """Add ``deletion`` to ``service``'s pending one (the caller holds ``_lock``)."""
        if (pending := merged(self._pending.get(service), deletion)) is not None:
            self._pending[service] = pending

    async def _look(self, service: str) -> FenceAnswer:
        """Who holds ``service``'s lock, writing nothing (a check after a lost lease)."""
        key = holder_key(self.cluster, service).encode()
        try:
            found = await self.pool.call(
                "read lock", lambda client: client.get(key), timeout=self.call_timeout
            )
            if found is not None:
                self._seen(service, parse_holder(key.decode(), service, found.value).host)
        except (EtcdError, ClusterStateError) as exc:
            return FenceAnswer(granted=False, reason=str(exc))
        return FenceAnswer(granted=False, reason="lease lost since: only a start takes it again")

    def _seen(self, service: str, host: str) -> None:
        with self._lock:
            self._others.pop(service, None)
            if host != self.host:
                self._others[service] = host

    async def _acquire_now(
        self, service: str, value: bytes, lease: int, start: bool
    ) -> FenceAnswer:
        try:
            return await self._take(service, value, lease)
        except (EtcdError, asyncio.CancelledError) as exc:
            # No answer (or an error) after the request may have reached etcd: a start is
            # refused, and what it may have written is deleted (by value: nothing a later grant
            # wrote) unless a later grant comes first.  A check's write needs no undoing: its
            # VIP is held, and the stop that ends the hold releases the whole lock.
            if start:
                with self._lock:
                    self._queue(service, Deletion(False, only=(value,)))
                logger.warning(
                    "%s: no answer to the lock request; what it may have written is deleted "
                    "once etcd answers", service,
                )  # fmt: skip
            if isinstance(exc, asyncio.CancelledError):
                raise
            return FenceAnswer(granted=False, reason=str(exc))
        except ClusterStateError as exc:
            return FenceAnswer(granted=False, reason=str(exc))

    async def _take(self, service: str, value: bytes, lease: int) -> FenceAnswer:
        key = holder_key(self.cluster, service).encode()
        released = released_key(self.cluster, service).encode()

        async def create(client: Any) -> Any:
            # Taking the lock consumes the release record: it only ever describes the holder
            # before this one, so a later holder's expiry can never pass for a clean release.
            t = client.transactions
            return await client.transaction(
                compare=[t.create(key) == 0],
                success=[t.put(key, value, lease=lease), t.get(released), t.delete(released)],
                failure=[t.get(key)],
            )

        created, responses = await self.pool.call("lock", create, timeout=self.call_timeout)
        if created:
            return self._taken(service, released.decode(), responses[1])
        found = responses[0][0][1] if responses and responses[0] else None
        if found is None:  # deleted in between: the next attempt decides
            return FenceAnswer(granted=False, reason=f"{key.decode()} changed; retry")
        holder = parse_holder(key.decode(), service, found.value, lease=found.lease)
        self._seen(service, holder.host)
        if holder.host != self.host:
            since = time.strftime("%H:%M:%S", time.localtime(holder.since))
            return FenceAnswer(
                granted=False,
                reason=f"held by host {holder.host} (for {holder.datasource or '-'}) since "
                f"{since}: it must release the VIP first, or its lease expire",
            )
        if found.lease == lease:
            return FenceAnswer(granted=True)  # already ours
        # Ours from an earlier lease (an agent restarted, or a lease lost and renewed):
        # no other host holds it, so move it onto the current lease.
        revision = found.mod_revision

        async def claim(client: Any) -> Any:
            t = client.transactions
            return await client.transaction(
                compare=[t.mod(key) == revision],
                success=[t.put(key, value, lease=lease)],
                failure=[],
            )

        claimed, _ = await self.pool.call("lock", claim, timeout=self.call_timeout)
        if claimed:
            return FenceAnswer(granted=True)
        return FenceAnswer(granted=False, reason=f"{key.decode()} changed; retry")

    def _taken(self, service: str, key: str, found: list[Any]) -> FenceAnswer:
        """The lock was free and is ours now: vacated if the release record (read and deleted
        in the same transaction) shows that the last holder let go cleanly."""
        record = None
        if found:
            try:
                record = parse_released(key, service, found[0][0])
            except ClusterStateError as exc:  # doubt: the duplicate address check decides
                logger.error("%s (the duplicate address check runs)", exc)
        if record is None:
            logger.info(
                "%s: lock taken; no clean release on record (the first holder, or the last "
                "one's lease expired): the duplicate address check decides",
                service,
            )
            return FenceAnswer(granted=True)
        logger.info(
            "%s: lock taken, released cleanly by %s (holder revision %d): no other host can "
            "hold the VIP, no duplicate address check",
            service, record.host, record.revision,
        )  # fmt: skip
        return FenceAnswer(granted=True, vacated=True)

    async def _release_pending(self) -> FenceAnswer:
        """Delete each pending service's holder key if it is ours."""
        with self._lock:
            pending = sorted(self._pending)
        problems = []
        for service in pending:
            async with self._serial(service):
                with self._lock:
                    entry = self._pending.get(service)
                if entry is None:  # taken again meanwhile
                    continue
                try:
                    await delete_lock(
                        self.pool, self.cluster, self.host, service, entry, self.call_timeout
                    )
                    with self._lock:
                        if self._pending.get(service) is entry:  # not a newer release
                            del self._pending[service]
                except EtcdError as exc:
                    problems.append(str(exc))
        if problems:
            return FenceAnswer(granted=False, reason="; ".join(problems))
        return FenceAnswer(granted=True)

    # -- the lease and the retried releases (a coroutine on the loop) ---------------------------

    async def run(self) -> None:
        """Keep the lease (renewed every TTL/5) and retry the releases etcd did not take yet."""
        self.keeper.start()
        while not self._closing:
            await self.keeper.renew()
            if self._pending:
                await self._release_pending()
            await asyncio.sleep(self.keeper.period)

    async def close(self) -> None:
        """Release what is pending, revoke the lease (its holder keys go with it), stop."""
        self._closing = True
        if self._pending:
            await self._release_pending()
        await self.keeper.revoke()
