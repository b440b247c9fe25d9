"""``floatingip status --etcd``, and the agent's status record that it reads.

Who holds each VIP, for which datasource and since when is the holder lock
(``service/<service>/holder``).  What only a running agent knows, each service's last error
and last repair, each agent publishes in ``/floatingip/<cluster>/agent/<host>``, attached to
its lease (so a dead agent's record goes with its lock):

    {"host": "db1", "updated": 1764280000.0,
     "services": {"master": {"last_error": "...", "error_time": ..., "last_repair": "...",
                             "repair_time": ...}}}

written whenever one of them changes, and again under each new lease.  Agents ignore these keys.

With ``--patroni-scope`` (agents that follow Patroni's keys, floatingip.patroni_source) the
datasources are Patroni's members and leader key, as the agents read them; the locks, the policy
and the records are still floatingip's own keys.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from floatingip.cluster_state import Snapshot, cluster_prefix
from floatingip.datasource import DataSource, load_datasources
from floatingip.etcd_client import EtcdError, EtcdPool, parse_endpoints
from floatingip.patroni_source import PatroniScope, PatroniSnapshot
from floatingip.results import Event
from floatingip.service import load_services
from floatingip.status import ClusterStatus, ServiceStatus, expected_master, verdict
from floatingip.vocabulary import EventKind

if TYPE_CHECKING:
    from floatingip.etcd_lease import LeaseKeeper

__all__ = ["StatusRecord", "agent_key", "etcd_status"]

logger = logging.getLogger(__name__)

REPUBLISH = 5.0  # seconds between checks that the record is there under the current lease


def agent_key(cluster: str, host: str) -> str:
    return f"{cluster_prefix(cluster)}agent/{host}"


# -- reading ------------------------------------------------------------------------------------


async def _get_prefixes(pool: EtcdPool, prefixes: list[str]) -> tuple[list[list[Any]], int]:
    """Each prefix's keys, all at one revision (one transaction: a leader change between two
    reads would mix Patroni's old leader with floatingip's new holder), and that revision (0
    when no key was found: a transaction's ranges carry no header of their own)."""

    async def read(client: Any) -> Any:
        t = client.transactions
        gets = [t.get(p.encode(), _prefix_end(p.encode())) for p in prefixes]
        return await client.transaction(compare=[], success=gets, failure=[])

    _, responses = await pool.call("read", read)
    found = [[kv for _, kv in response] for response in responses]
    revision = max((int(kv.header.revision) for kvs in found for kv in kvs), default=0)
    return found, revision


def _prefix_end(prefix: bytes) -> bytes:
    """The end of ``prefix``'s range (prefixes here end with '/', never with byte 0xff)."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


async def _read(
    pool: EtcdPool, cluster: str, patroni: PatroniScope | None = None
) -> tuple[Snapshot, dict[str, Any], list[str]]:
    """One read of the cluster's keys (and Patroni's, with ``patroni``, at the same revision):
    the snapshot, the agents' records, the keys left out."""
    prefix = cluster_prefix(cluster)
    view = Snapshot(cluster)
    if patroni is None:
        (found,), revision = await _get_prefixes(pool, [prefix])
    else:  # its datasources; floatingip's own datasource keys are ignored
        view = PatroniSnapshot(cluster, patroni_prefix=patroni.prefix)
        (theirs, found), revision = await _get_prefixes(pool, [patroni.prefix, prefix])
        for kv in theirs:
            key = kv.key.decode("utf-8", "replace")
            view.apply(key, kv.value, revision=int(kv.mod_revision))
    view.revision = revision
    records: dict[str, Any] = {}
    problems: list[str] = []
    for kv in found:
        key = kv.key.decode("utf-8", "replace")
        if key.startswith(f"{prefix}agent/"):
            try:
                records[key.rsplit("/", 1)[1]] = json.loads(kv.value)
            except ValueError as exc:
                problems.append(f"{key}: not JSON ({exc})")
            continue
        view.apply(key, kv.value, revision=int(kv.mod_revision), lease=int(kv.lease))
    problems += [f"{key}: {why}" for key, why in sorted(view.problems.items())]
    return view, records, problems


def _latest(records: dict[str, Any], service: str, what: str) -> str | None:
    """The newest ``last_<what>`` any agent recorded for ``service``, with its host."""
    best: tuple[float, str] | None = None
    for host, record in records.items():
        entry = (record.get("services") or {}).get(service) or {}
        message, when = entry.get(f"last_{what}"), entry.get(f"{what}_time")
        if isinstance(message, str) and isinstance(when, (int, float)):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
            if best is None or when > best[0]:
                best = (when, f"{message} (agent of {host}, {stamp})")
    return best[1] if best is not None else None


def etcd_status(
    cluster_home: str | Path, cluster: str, etcd: str, patroni: PatroniScope | None = None
) -> ClusterStatus:
    """Where each VIP is per etcd's holder locks, against the datasources etcd holds (those
    declared in the cluster home and absent from etcd count as OFFLINE), or with ``patroni``
    against Patroni's members and leader key alone, as the agents follow them."""
    services = load_services(cluster_home, cluster)
    declared = load_datasources(cluster_home, cluster) if patroni is None else {}
    endpoints = parse_endpoints(etcd)

    async def read() -> tuple[Snapshot, dict[str, Any], list[str]]:
        pool = EtcdPool(endpoints, timeout=2.0)
        try:
            failures = []
            for _ in endpoints:  # each endpoint once: the pool moves on after a failure
                try:
                    return await _read(pool, cluster, patroni)
                except EtcdError as exc:
                    failures.append(" ".join(str(exc).split()))
            raise EtcdError("; ".join(failures))
        finally:
            await pool.close()

    view, records, problems = asyncio.run(read())
    datasources = dict(declared)  # OFFLINE, as a datasource whose key is absent counts
    for record in view.datasources.values():
        datasources[record.name] = DataSource(
            cluster, record.name, record.host, record.role, record.state
        )
    master, nobody = expected_master(datasources.values())
    result = []
    for name in sorted(set(services) | set(view.holders)):
        holder = view.holders.get(name)
        status = ServiceStatus(
            service=name,
            expected_host=master.host if master is not None else None,
            expected_datasource=master.name if master is not None else None,
            held_on=[holder.host] if holder is not None else [],
            datasource=holder.datasource if holder is not None else None,
            since=holder.since if holder is not None else None,
            last_error=_latest(records, name, "error"),
            last_repair=_latest(records, name, "repair"),
        )
        verdict(status)
        if status.verdict == "ok" and holder is not None and master is not None:
            if holder.datasource and holder.datasource != master.name:
                status.verdict = "misplaced"
                status.why = f"held for {holder.datasource}; facts: {master.name}"
        elif status.verdict == "ok" and master is None:
            status.why = nobody
        result.append(status)
    source = ",".join(str(endpoint) for endpoint in endpoints)
    if patroni is not None:
        source += f", Patroni {patroni.prefix}"
    return ClusterStatus(
        cluster=cluster, source=source, policy=str(view.policy), probed=[], services=result,
        problems=problems,
    )  # fmt: skip


# -- the agent's side ---------------------------------------------------------------------------


class StatusRecord:
    """The agent's record: fed by its Manager's events (a listener, in the worker thread),
    written by :meth:`run` (a task on the agent's loop) under the current lease."""

    def __init__(
        self, *, pool: EtcdPool, cluster: str, host: str, keeper: LeaseKeeper, loop: Any
    ) -> None:
        self.pool = pool
        self.key = agent_key(cluster, host).encode()
        self.host = host
        self.keeper = keeper
        self.services: dict[str, dict[str, Any]] = {}
        self._loop = loop
        self._dirty = asyncio.Event()
        self._lock = threading.Lock()  # events come from the worker, the supervisor, ARP threads

    def on_event(self, event: Event) -> None:
        kind = event.kind
        if kind is EventKind.DATASOURCE or event.service is None:  # the quiet path: nothing
            return
        if kind is EventKind.DRIFT:
            update = {"last_repair": event.message, "repair_time": event.time}
        elif not event.ok and kind in (EventKind.COMMAND, EventKind.WARNING):
            update = {"last_error": event.message, "error_time": event.time}
        else:
            return
        with self._lock:
            self.services.setdefault(event.service, {}).update(update)
        self._loop.call_soon_threadsafe(self._dirty.set)

    def value(self) -> bytes:
        with self._lock:
            record = {"host": self.host, "updated": time.time(), "services": self.services}
            return json.dumps(record).encode()

    async def _put(self, value: bytes, lease: int, client: Any) -> Any:
        return await client.put(self.key, value, lease=lease)

    async def run(self) -> None:
        """Write the record when it changed, or when the lease did; never spin: without a lease
        it waits for the next check, dirty or not."""
        written_under: int | None = None
        while True:
            if not self._dirty.is_set():
                await self._wake(REPUBLISH)
            lease, _ = self.keeper.current()
            if lease is None:  # nothing to write under yet
                await asyncio.sleep(REPUBLISH)
                continue
            if not self._dirty.is_set() and lease == written_under:
                continue
            self._dirty.clear()
            try:
                await self.pool.call("status record", partial(self._put, self.value(), lease))
                written_under = lease
            except EtcdError as exc:  # written again at the next check, not before
                logger.debug("%s", exc)
                written_under = None
                await asyncio.sleep(REPUBLISH)

    async def _wake(self, timeout: float) -> None:
        """Until the record changes or ``timeout`` passes.  Not asyncio.wait_for: on 3.11 it
        swallows a cancel that arrives as the event is set, and the agent would not stop."""
        waiter = asyncio.ensure_future(self._dirty.wait())
        try:
            await asyncio.wait({waiter}, timeout=timeout)
        finally:
            waiter.cancel()
