"""``floatingip agent``: one long-running process per database host, fed by etcd.

It reads the cluster's state from etcd (floatingip.cluster_state), builds a Manager for this host
(datasources from etcd; services and rules from the cluster home), then follows every change with
a watch from the last revision it saw; after any watch error, or once etcd is reachable again, it
reads everything anew and applies the difference, so no change is missed across reconnects or a
compaction.  The Manager runs only this host's commands, one call at a time in one worker thread
(in the order etcd gave the changes), and asks the etcd fence (floatingip.etcd_fence) before
every start.  SIGTERM or SIGINT: the failsafe releases the VIP, the lock is released, the lease
revoked, exit 0.  Under systemd (Type=notify): READY=1 after the first reconcile, STATUS= and
WATCHDOG=1 while alive (floatingip.liveness).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from floatingip.actions import perform
from floatingip.agent_observe import Observed
from floatingip.cluster_state import DataSourceRecord, Snapshot
from floatingip.commands import Executor, LocalExecutor
from floatingip.datasource import DataSource, PolicyMode, State
from floatingip.errors import FloatingIPError
from floatingip.etcd_client import Endpoint, EtcdError
from floatingip.etcd_fence import DEFAULT_TTL, EtcdFence
from floatingip.fence import DuplicateAddressFence, Fences
from floatingip.liveness import Liveness
from floatingip.logformat import JournalFormatter
from floatingip.manager import Manager
from floatingip.metrics import Exporter
from floatingip.metrics_agent import AgentMetrics
from floatingip.notify import Notifier
from floatingip.patroni_source import PatroniScope, state_reader, watched_prefixes
from floatingip.rule_files import load_rules, shipped_rules_dir
from floatingip.service import load_services
from floatingip.supervisor import DEFAULT_MONITOR_INTERVAL
from floatingip.worker import Worker

__all__ = ["Agent", "JournalFormatter"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
RETRY_READ = 0.5  # seconds between attempts to read the cluster's state
CLOSE_TIMEOUT = 30.0


def _add(manager: Manager, record: DataSourceRecord) -> Any:
    if record.name in manager.datasources:  # deleted, then written again
        return manager.update_datasource(record.name, role=record.role, state=record.state)
    return manager.add_datasource(
        record.name, role=record.role, host=record.host, state=record.state
    )


async def _watch(client: Any, *, prefix: bytes, start: int) -> Any:
    return await client.watch_prefix(prefix, start_revision=start)


class Agent(Observed):
    """The agent of host ``host`` for cluster ``cluster``; ``await agent.run()`` until SIGTERM."""

    def __init__(
        self,
        *,
        cluster_home: str | Path,
        cluster: str,
        host: str,
        endpoints: Sequence[Endpoint],
        ttl: int = DEFAULT_TTL,
        rules_dir: str | Path | None = None,
        monitor_interval: float = DEFAULT_MONITOR_INTERVAL,
        executor: Executor | None = None,
        patroni: PatroniScope | None = None,  # datasources from Patroni's keys, not ours
        metrics: tuple[str, int] | None = None,  # the Prometheus endpoint's address
    ) -> None:
        # Files first: a bad service or rule file stops the agent before it touches etcd.
        self.services = load_services(cluster_home, cluster)
        self.rulesets = load_rules(rules_dir if rules_dir is not None else shipped_rules_dir())
        self.cluster = cluster
        self.host = host
        self.endpoints = tuple(endpoints)
        self.ttl = ttl
        self.monitor_interval = monitor_interval
        self.executor = executor if executor is not None else LocalExecutor()
        self.patroni = patroni
        self.manager: Manager | None = None
        self._applied: dict[str, DataSourceRecord] = {}
        self._policy = PolicyMode.AUTOMATIC
        self._stop = asyncio.Event()
        self._rewatch = asyncio.Event()
        self.worker = Worker(f"floatingip-agent-{cluster}")
        # Listening from the start: a port in use stops the agent before it touches etcd.
        self.exporter = Exporter(metrics) if metrics is not None else None
        self.metrics = None if self.exporter is None else AgentMetrics(self.exporter, self._fence)
        self._record_task: asyncio.Task[None] | None = None

    # -- life cycle --------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        self.pool = self._new_pool()
        self.state = state_reader(self.pool, self.cluster, self.patroni)
        self.fence = EtcdFence(
            self.pool,
            self.cluster,
            self.host,
            loop=loop,
            ttl=self.ttl,
            on_lost=self._drop,
            on_recovered=self._rewatch.set,  # called on the loop
        )
        keeper = asyncio.create_task(self.fence.run(), name="lease keeper")
        self.systemd_start()
        ok = True
        try:
            snapshot = await self._read()
            if snapshot is not None:
                await self._start_manager(snapshot)
                self.liveness.ready()
                follower = asyncio.create_task(self._follow(snapshot))
                checker = asyncio.create_task(self._check_held_loop())
                await self._stop.wait()
                logger.info("stopping: releasing this host's VIPs")
                self.liveness.stopping()
                for task in (follower, checker):
                    task.cancel()
                await asyncio.gather(follower, checker, return_exceptions=True)
        finally:
            # The failsafe, whatever ended the run (a failure after the manager was built too),
            # and before the lease goes with the fence.
            ok = await self._close_manager()
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            await self.fence.close()
            await self.pool.close()
            await self.liveness.close(ok)
            self.worker.stop(timeout=5)
            await self._stop_observing()
        logger.info("agent of host %s stopped%s", self.host, "" if ok else " with errors")
        return 0 if ok else 1

    def systemd_start(self) -> None:
        """Under systemd (NOTIFY_SOCKET): status now, READY=1 after the first reconcile,
        watchdog pings while alive (floatingip.liveness)."""
        name = f"cluster {self.cluster}, host {self.host}"
        self.liveness = Liveness(
            Notifier.from_environment(), self.worker, lambda: self.manager, name
        )
        self.liveness.start("starting: reading the cluster's state from etcd")

    async def _call(self, what: str, call: Callable[[], T]) -> T:
        return await asyncio.wrap_future(self.worker.submit(what, call))

    async def _read(self) -> Snapshot | None:
        """The cluster's state, read again until etcd answers (None: stopped meanwhile)."""
        failures = 0
        while not self._stop.is_set():
            try:
                snapshot = await self.state.snapshot()
                if failures:
                    logger.info("read the cluster's state after %d failed attempt(s)", failures)
                return snapshot
            except EtcdError as exc:
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    logger.error("cannot read the cluster's state (%d): %s", failures, exc)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), RETRY_READ)
        return None

    async def _start_manager(self, snapshot: Snapshot) -> None:
        datasources = [
            DataSource(self.cluster, r.name, r.host, r.role) for r in snapshot.datasources.values()
        ]
        states = {r.name: r.state for r in snapshot.datasources.values()}

        def build() -> Manager:
            return Manager(
                cluster=self.cluster,
                services=self.services,
                rulesets=self.rulesets,
                datasources=datasources,
                host=self.host,
                executor=self.executor,
                policy=snapshot.policy,
                states=states,
                monitor_interval=self.monitor_interval,
                # The lock first; then, as a holder that died without releasing may still
                # answer for the VIP (its kernel keeps it), the duplicate address check.
                fence=Fences(
                    self.fence, DuplicateAddressFence(self.services, {self.host: self.executor})
                ),
            )

        self.manager = await self._call("starting the manager", build)
        self._observe(self.manager)
        self._applied = dict(snapshot.datasources)
        self._policy = snapshot.policy
        logger.info(
            "agent of host %s, cluster %s: revision %d, datasources %s, policy %s, etcd %s",
            self.host, self.cluster, snapshot.revision,
            ", ".join(f"{r.name}@{r.host} {r.role}/{r.state}" for r in datasources) or "none",
            snapshot.policy, ", ".join(map(str, self.endpoints)),
        )  # fmt: skip
        await self._call("checking the VIPs found at start", self._check_held)

    async def _close_manager(self) -> bool:
        manager = self.manager
        if manager is None:
            return True
        # Not in line behind the worker: a call wedged there must not keep the failsafe from
        # releasing the VIPs before the lease is revoked (Manager.close copes with a wedged change).
        closer = Worker(f"floatingip-close-{self.cluster}")
        try:
            result = await asyncio.wait_for(
                asyncio.wrap_future(closer.submit("closing the manager", manager.close)),
                CLOSE_TIMEOUT + 15,
            )
        except asyncio.TimeoutError:
            logger.error("the manager did not close within %g s", CLOSE_TIMEOUT + 15)
            return False
        except FloatingIPError as exc:
            logger.error("the manager did not close: %s", exc)
            return False
        finally:
            closer.stop(timeout=0)
        for outcome in result.commands:
            verdict = "released" if outcome.ok else f"FAILED to release ({outcome.error})"
            logger.info("%s %s on %s", verdict, outcome.service, outcome.host)
        return result.ok

    # -- following etcd ----------------------------------------------------------------------

    async def _follow(self, view: Snapshot) -> None:
        """Watch from the view's revision + 1; after any error or a recovery, read again and
        apply the difference."""
        prefixes = watched_prefixes(self.state)
        while not self._stop.is_set():
            watches: list[Any] = []
            try:
                for prefix in prefixes:
                    request = partial(_watch, prefix=prefix.encode(), start=view.revision + 1)
                    watches.append(await self.pool.call("watch", request))
                self._rewatch.clear()
                tasks: list[asyncio.Task[Any]] = [asyncio.create_task(self._rewatch.wait())]
                tasks += [asyncio.create_task(self._consume(w, view)) for w in watches]
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                if failed := next((t.exception() for t in done if t.exception()), None):
                    raise failed
                logger.info("re-reading the cluster's state (etcd reachable again)")
            except Exception as exc:  # every watch failure (not a cancel) is handled the same way
                logger.warning(
                    "watch ended (%s: %s); reading the state again", type(exc).__name__, exc
                )
                await asyncio.sleep(0.2)
            finally:
                for watch in watches:
                    try:
                        await asyncio.wait_for(watch.cancel(), 1.0)
                    except Exception as exc:  # a dead stream's cancel may fail too
                        logger.debug("watch cancel: %r", exc)
            view = await self._reread()

    async def _reread(self) -> Snapshot:
        snapshot = await self._read()
        if snapshot is None:
            raise asyncio.CancelledError
        self._sync(snapshot, reason="read")
        return snapshot

    async def _consume(self, watch: Any, view: Snapshot) -> None:
        async for event in watch:
            received = time.monotonic()
            key = event.kv.key.decode("utf-8", "replace")
            value = None if event.kind == "DELETE" else event.kv.value
            holders = dict(view.holders)
            changed = view.apply(key, value, revision=event.kv.mod_revision, lease=event.kv.lease)
            view.revision = max(view.revision, int(event.kv.mod_revision))
            if changed == "holder" and value is None:
                # Another host let go: a start it refused may go now (our own release: nothing).
                gone = [h for name, h in holders.items() if name not in view.holders]
                if not gone or any(holder.host != self.host for holder in gone):
                    self._submit("a lock was released", partial(self._reconsider, probe=False))
            elif changed in ("datasource", "policy"):
                self._sync(view, reason=f"revision {view.revision}")
                self._note_lag(received, view.revision)

    def _submit(self, what: str, call: Callable[[], Any]) -> None:
        self.worker.submit(what, call)

    def _sync(self, view: Snapshot, *, reason: str) -> None:
        """Submit to the Manager what differs between ``view`` and what it was given."""
        manager = self.manager
        if manager is None:
            return
        for name, record in sorted(view.datasources.items()):
            old = self._applied.get(name)
            if old is None:
                self._submit(f"datasource {name} added ({reason})", partial(_add, manager, record))
            elif (old.role, old.state) != (record.role, record.state):
                if old.host != record.host:
                    logger.error(
                        "datasource %s: host %s -> %s is not followed: restart the agents",
                        name, old.host, record.host,
                    )  # fmt: skip
                update = partial(
                    manager.update_datasource, name, role=record.role, state=record.state
                )
                self._submit(f"datasource {name} ({reason})", update)
            self._applied[name] = record
        for name in sorted(set(self._applied) - set(view.datasources)):
            old = self._applied[name]
            if old.state is not State.OFFLINE:
                # a datasource whose key is deleted is taken as OFFLINE: its VIP is released
                offline = partial(manager.update_datasource, name, state=State.OFFLINE)
                self._submit(f"datasource {name} deleted ({reason})", offline)
            self._applied[name] = DataSourceRecord(old.name, old.host, old.role, State.OFFLINE)
        if view.policy is not self._policy:
            self._policy = view.policy
            self._submit(f"policy ({reason})", partial(manager.set_policy, view.policy))
        if reason == "read":
            self._submit("re-evaluating after a read", self._reconsider)

    def _reconsider(self, *, probe: bool = True) -> None:
        """Ask the rules again (a start refused while another host held the lock may go now);
        after a lock released elsewhere without reading the host first (its start checks)."""
        if self.manager is not None and not self.manager.closed:
            self.manager.reconcile(probe=probe)

    # -- the fence's side --------------------------------------------------------------------

    def _drop(self, reason: str) -> None:
        """The lease is lost: remove every VIP of this host now, without waiting for the
        Manager's lock (a change in progress may hold it past the lease's end)."""
        manager = self.manager
        if manager is None:  # not built yet: it reconciles against what is there at start
            for name, service in self.services.items():
                action = perform(service, "stop", self.executor)
                if not action.ok:
                    logger.error("%s: VIP NOT dropped (%s): %s", name, reason, action.error)
            return
        result = manager.drop_all(f"etcd lease lost: {reason}")
        for outcome in result.commands:
            if outcome.ok:
                logger.warning("%s: VIP dropped (%s)", outcome.service, reason)
            else:
                logger.error("%s: VIP NOT dropped (%s): %s", outcome.service, reason, outcome.error)
        self._submit("re-reading what is held after the drop", self._reconsider)

    def _check_held(self) -> None:
        """Every VIP this host holds must hold its lock: re-acquire it (granted when ours or
        free); if another host holds it, drop the VIP here.  Without a lease the watchdog
        decides (floatingip.etcd_fence), not this check."""
        manager = self.manager
        if manager is None or manager.closed:
            return
        refused = False
        for service in manager.held:
            # under the service's lock, held then: a stop on another thread may have released
            # the lock since manager.held was read, and must not see it taken again
            other = manager.while_held(service, partial(self.fence.held_elsewhere, service))
            if other is not None:
                refused = True
                logger.error("%s is held here while %s holds its lock: dropping it", service, other)
                manager.run_service(service, "stop")
        if refused:
            manager.reconcile()

    async def _check_held_loop(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self.fence.period * 2))
            await self._call("checking the held VIPs' locks", self._check_held)
