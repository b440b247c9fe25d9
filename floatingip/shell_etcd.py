"""``floatingip shell --etcd URL``: the shell's dialogue, with each change published to etcd.

The agents (``floatingip agent``) act on what etcd says; this shell runs no command itself.  A
change is decided on one read of the cluster's keys, as the local shell decides on its
Manager's state, and written in one transaction that succeeds only if no datasource key changed
since that read: a switch moves the master role atomically and never promotes a second master.
``ls`` reads etcd: the datasources, the policy, and who holds each VIP (the holder keys).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from floatingip.cluster import ClusterState as Belief
from floatingip.cluster_state import ClusterState, DataSourceRecord, Snapshot, datasource_key
from floatingip.datasource import (
    DataSource,
    PolicyMode,
    Role,
    State,
    load_datasources,
    parse_policy,
    parse_role,
    parse_state,
)
from floatingip.errors import DataSourceError, UsageError
from floatingip.etcd_client import Endpoint, EtcdError, EtcdPool
from floatingip.results import ChangeResult, CommandOutcome, Event, Listener, SwitchResult
from floatingip.service import ServiceDefinition, load_services
from floatingip.shell import Shell, interrupts_for_this_thread_only
from floatingip.validation import check_name, check_optional_name
from floatingip.vocabulary import EventKind

__all__ = ["EtcdBackend", "EtcdShell", "belief", "listing", "switch_changes"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

CALL_TIMEOUT = 2.0  # seconds per etcd request: an operator waits, and a dead member must not hang
NOT_HERE = (
    "'service' runs a command on this machine; with --etcd the agents run the commands "
    "(use 'floatingip shell' without --etcd on the database host)"
)

# A datasource change: what it was (in etcd, or as declared in the cluster home), what it becomes.
Change = tuple[DataSource, DataSource]


def one_line(text: object) -> str:
    return " ".join(str(text).split())


# -- deciding: pure functions of what etcd says --------------------------------------------------


def belief(cluster: str, view: Snapshot, declared: Mapping[str, DataSource]) -> Belief:
    """The state the dialogue decides on: the datasources declared in the cluster home (OFFLINE,
    as a local shell starts them), overlaid with the ones etcd holds."""
    found = Belief(cluster=cluster, host="", hosts=frozenset(), policy=view.policy)
    found.datasources.update(declared)
    for record in view.datasources.values():
        found.datasources[record.name] = DataSource(
            cluster, record.name, record.host, record.role, record.state
        )
    return found


def describe(old: DataSource, new: DataSource) -> str:
    parts = [f"role {old.role.value} -> {new.role.value}"] if new.role is not old.role else []
    if new.state is not old.state:
        parts.append(f"state {old.state.value} -> {new.state.value}")
    return f"datasource {new.name}: {', '.join(parts) or new.state.value + ' again'}"


def switch_changes(state: Belief, to: str | None) -> tuple[str | None, str, list[Change]]:
    """The old master, the new one, and each datasource's change from before to after the
    whole switch (the local switch's steps, collapsed into one write)."""
    old, target, plan = state.switch_plan(to)
    after = dict(state.datasources)
    for name, role, new_state in plan:
        after[name] = after[name].changed(role=role, state=new_state)
    changes = [
        (state.datasources[name], after[name]) for name in dict.fromkeys(n for n, *_ in plan)
    ]
    return old, target, [(was, now) for was, now in changes if was != now]


def _since(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def listing(
    view: Snapshot,
    declared: Mapping[str, DataSource],
    services: Iterable[str],
    *,
    endpoint: str,
) -> tuple[list[str], list[tuple[str, ...]], list[str]]:
    """``ls`` from one read: the heading, the datasource table, and the lines after it."""
    heading = [f"ETCD[{endpoint}:{view.policy}] revision {view.revision}", "DATASOURCES:"]
    rows: list[tuple[str, ...]] = [("NAME", "HOST", "ROLE", "STATE", "HOLDS")]
    names = sorted(set(view.datasources) | set(declared))
    for name in names:
        holds = ",".join(s for s, h in sorted(view.holders.items()) if h.datasource == name)
        record = view.datasources.get(name)
        if record is None:  # declared in the cluster home; in etcd, if at all, unreadable
            unreadable = datasource_key(view.cluster, name) in view.problems
            state = "(see LEFT OUT)" if unreadable else "(not in etcd)"
            rows.append((name, declared[name].host, str(declared[name].role), state, holds or "-"))
        else:
            rows.append((name, record.host, str(record.role), str(record.state), holds or "-"))
    tail = ["SERVICES:"]
    for service in sorted(set(services) | set(view.holders)):
        holder = view.holders.get(service)
        if holder is None:
            tail.append(f"  {service}: held by nobody")
            continue
        lease = "" if holder.lease else " (no lease: written by hand?)"
        tail.append(
            f"  {service}: held on {holder.host} (for {holder.datasource or '-'}) "
            f"since {_since(holder.since)}{lease}"
        )
    tail += [f"LEFT OUT: {why}" for _, why in sorted(view.problems.items())]
    return heading, rows, tail


# -- the backend ---------------------------------------------------------------------------------


class EtcdBackend:
    """A :class:`floatingip.shell_backend.ShellBackend` that reads and publishes the cluster's
    keys in etcd.  Its requests run one at a time on its own event loop (the shell is one
    thread); :meth:`close` ends both."""

    def __init__(
        self,
        *,
        cluster: str,
        endpoints: Sequence[Endpoint],
        services: Mapping[str, ServiceDefinition],
        declared: Mapping[str, DataSource],
        timeout: float = CALL_TIMEOUT,
    ) -> None:
        self.cluster = check_name(cluster, "cluster")
        self.host = "etcd"  # it acts on no host: the agents do
        self.hosts: frozenset[str] = frozenset()
        self.endpoints = tuple(endpoints)
        self._services = MappingProxyType(dict(services))
        self._declared = dict(declared)
        self._pool = EtcdPool(self.endpoints, timeout=timeout)
        self._state = ClusterState(self._pool, cluster)
        self._loop = asyncio.new_event_loop()
        self._view = Snapshot(cluster)
        self._listeners: list[Listener] = []

    @classmethod
    def from_cluster_home(
        cls, cluster_home: str | Path, cluster: str, endpoints: Sequence[Endpoint]
    ) -> EtcdBackend:
        return cls(
            cluster=cluster,
            endpoints=endpoints,
            services=load_services(cluster_home, cluster),
            declared=load_datasources(cluster_home, cluster),
        )

    def _run(self, request: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(request)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):  # best effort: the clients may be unreachable
            self._run(self._pool.close())
        self._loop.close()

    # -- reading ---------------------------------------------------------------------------

    def read(self) -> Snapshot:
        """What etcd says now, from the first endpoint that answers; EtcdError naming each
        endpoint and its failure when none does."""
        failures: list[str] = []
        for _ in self.endpoints:
            try:
                self._view = self._run(self._state.snapshot())
                return self._view
            except EtcdError as exc:
                failures.append(one_line(exc))
        raise EtcdError("; ".join(failures))

    def _belief(self) -> tuple[Snapshot, Belief]:
        view = self.read()
        return view, belief(self.cluster, view, self._declared)

    def listing(self) -> tuple[list[str], list[tuple[str, ...]], list[str]]:
        view = self.read()
        return listing(view, self._declared, self._services, endpoint=str(self._pool.endpoint))

    @property
    def datasources(self) -> Mapping[str, DataSource]:
        """As of the last read (completion asks for them at every key press)."""
        return MappingProxyType(belief(self.cluster, self._view, self._declared).datasources)

    def datasource(self, name: str) -> DataSource:
        return self._belief()[1].known(check_name(name, "datasource"))

    @property
    def services(self) -> Mapping[str, ServiceDefinition]:
        return self._services

    @property
    def policy(self) -> PolicyMode:
        return self._view.policy

    @property
    def held(self) -> Mapping[str, str]:
        """Each service held anywhere, with the datasource it is held for (as of the last read)."""
        return {s: h.datasource or h.host for s, h in self._view.holders.items()}

    @property
    def problems(self) -> Mapping[str, str]:
        return {}  # commands run in the agents, which log their failures

    @property
    def repairs(self) -> int:
        return 0

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    # -- publishing ------------------------------------------------------------------------

    def _write(self, request: Coroutine[Any, Any, int]) -> None:
        try:
            self._run(request)
        except EtcdError as exc:  # a write with no answer may still have been applied
            raise EtcdError(
                f"{one_line(exc)}; it may or may not have been published: 'ls' shows which"
            ) from None

    def _publish(self, view: Snapshot, what: str, changes: list[Change]) -> ChangeResult:
        records = [DataSourceRecord(new.name, new.host, new.role, new.state) for _, new in changes]
        self._write(self._state.put_datasources_if_unchanged(records, view))
        for old, new in changes:
            event = Event(
                kind=EventKind.DATASOURCE, message=describe(old, new), datasource=new.name
            )
            for listener in list(self._listeners):
                listener(event)
        return ChangeResult(change=f"{what} (published)")

    def _change(self, name: str, role: Role | None, state: State | None) -> ChangeResult:
        view, now = self._belief()
        old = now.known(name)
        new = old.changed(role=role, state=state)
        return self._publish(view, describe(old, new), [(old, new)])

    def update_datasource(
        self, name: str, *, role: Role | str | None = None, state: State | str | None = None
    ) -> ChangeResult:
        new_role = parse_role(role) if role is not None else None
        new_state = parse_state(state) if state is not None else None
        if new_role is None and new_state is None:
            raise DataSourceError("update_datasource needs a role or a state")
        return self._change(check_name(name, "datasource"), new_role, new_state)

    def recover(self, name: str) -> ChangeResult:
        name = check_name(name, "datasource")
        role = self._belief()[1].recovery_role(name)
        return self._change(name, role, State.ONLINE)

    def welcome(self, name: str) -> ChangeResult:
        name = check_name(name, "datasource")
        self._belief()[1].check_welcome(name)
        return self._change(name, None, State.ONLINE)

    def set_policy(self, mode: PolicyMode | str) -> ChangeResult:
        new = parse_policy(mode)
        self._write(self._state.put_policy(new))
        self._view.policy = new
        return ChangeResult(change=f"policy {new} (published)")

    def switch_target(self, to: str | None = None) -> str:
        now = self._belief()[1]
        return now.switch_target(check_optional_name(to, "datasource"), now.single_master())

    def switch(self, to: str | None = None) -> SwitchResult:
        view, now = self._belief()
        old, target, changes = switch_changes(now, check_optional_name(to, "datasource"))
        step = self._publish(view, f"switch to {target}", changes)
        return SwitchResult(old_master=old, new_master=target, steps=(step,))

    def run_service(self, name: str, action: str, *, host: str | None = None) -> CommandOutcome:
        raise UsageError(NOT_HERE)


class EtcdShell(Shell):
    """The shell over an :class:`EtcdBackend`: the same commands and answers; ``ls`` shows what
    etcd says; ``service`` (a command on this machine) is refused."""

    manager: EtcdBackend

    def __init__(self, backend: EtcdBackend, **kwargs: Any) -> None:
        super().__init__(backend, **kwargs)

    def banner(self, where: str = "") -> str:
        endpoints = ",".join(map(str, self.manager.endpoints))
        return super().banner(where or f"changes published to etcd {endpoints}")

    def _error(self, text: str) -> None:
        super()._error(one_line(text))  # grpc's messages span lines: one line each

    def _nothing_runs_here(self) -> bool:
        return False  # by design: the agents run the commands

    def warn_about_host(self) -> None:
        """At start: read etcd once, so that an unreachable etcd is said at once (the shell
        goes on: each command says so again until it answers)."""
        try:
            with interrupts_for_this_thread_only():  # grpc starts its threads here
                self.manager.read()
        except EtcdError as exc:
            self._say(f"WARNING: {exc}")

    def do_ls(self, arg: str) -> bool:
        """ls: what etcd says: the datasources, the policy, and who holds each VIP"""
        self._run(self._ls)
        return False

    def _ls(self) -> None:
        heading, rows, tail = self.manager.listing()
        for line in heading:
            self._say(line)
        self._say_table(rows)
        for line in tail:
            self._say(line)

    def do_service(self, arg: str) -> bool:
        """service: not with --etcd (the agents run the commands)"""
        self._error(NOT_HERE)
        return False

    def complete_service(self, text: str, line: str, begin: int, end: int) -> list[str]:
        return []
