"""The Manager: the facade a cluster manager imports.

It holds the cluster's datasources, the policy and the services, feeds every change to the rules
as facts, runs the service actions the rules ask for, and records everything in a bounded history
that listeners also receive.  It reconciles what it believes with what is really held at start,
on a monitor and on retries (floatingip.supervisor).

Changes are applied one at a time, in the order callers get the manager's lock; each call
returns after the commands it caused have run, so the commands of a service never interleave and
always run in the order of the changes that caused them.  Each argument is checked here, at the
entry points; the parts behind (floatingip.cluster, .dispatch, .reconcile, .failsafe,
.lifecycle) trust them.  What it reads (datasources, held, problems, history...) is its base
class's, floatingip.view.ManagerView.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from floatingip import assembly, failsafe, lifecycle
from floatingip import dead as declarations
from floatingip.cluster import ClusterState
from floatingip.commands import Executor
from floatingip.datasource import (
    DataSource,
    PolicyMode,
    Role,
    State,
    parse_policy,
    parse_role,
    parse_state,
)
from floatingip.dispatch import Dispatcher
from floatingip.engine import Engine
from floatingip.errors import DataSourceError, UsageError
from floatingip.fence import DuplicateAddressFence, Fence
from floatingip.hosts import DEFAULT_UNREACHABLE_AFTER, Hosts
from floatingip.memory import release_freed_memory
from floatingip.reconcile import monitor, reevaluate
from floatingip.reconcile import retry as retry_service
from floatingip.results import ChangeResult, CommandOutcome, Event, History, SwitchResult
from floatingip.ruleset import Intent, RuleSet
from floatingip.service import ServiceDefinition
from floatingip.supervisor import DEFAULT_MONITOR_INTERVAL, Retries, RetryPolicy, Supervisor
from floatingip.validation import (
    check_instance,
    check_name,
    check_optional_name,
    check_seconds,
)
from floatingip.view import ManagerView

__all__ = ["ChangeResult", "CommandOutcome", "Event", "Manager", "SwitchResult"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_HISTORY = 1000


class Manager(ManagerView):
    """Keeps the VIP (and any other rule-driven service) in line with the cluster's datasources.

    ``host`` is this manager's host (default: the machine's name); ``executor`` runs its commands
    and ``executors`` maps other hosts it may act for to theirs.  ``roles`` and ``states`` give
    what is already known at start (datasources are OFFLINE otherwise); with
    ``reconcile_at_start`` the manager then reads what each service really holds before the rules
    may take anything.  ``monitor_interval`` seconds between drift checks (0: off); ``retry``
    bounds the retries of failed commands; ``history_size`` bounds the history.  ``fence`` is
    asked before every start (default: duplicate address detection, see floatingip.fence).
    ``failsafe`` (Tungsten's ``manager.vip.isFailSafe``): closing releases what this manager
    holds; False keeps it, for a one-shot process (``floatingip hook``) whose VIP must outlive it.
    ``unreachable_after``: seconds a command to another host may take before that host is
    reported unreachable and the manager goes on (0: wait for the command's own timeout); see
    :meth:`declare_dead` for moving a VIP away from a host that cannot be reached.
    """

    def __init__(
        self,
        *,
        cluster: str,
        services: Mapping[str, ServiceDefinition],
        rulesets: Iterable[RuleSet],
        datasources: Iterable[DataSource] = (),
        host: str | None = None,
        executor: Executor | None = None,
        executors: Mapping[str, Executor] | None = None,
        policy: PolicyMode | str = PolicyMode.AUTOMATIC,
        history_size: int = DEFAULT_HISTORY,
        roles: Mapping[str, Role | str] | None = None,
        states: Mapping[str, State | str] | None = None,
        reconcile_at_start: bool = True,
        monitor_interval: float = DEFAULT_MONITOR_INTERVAL,
        retry: RetryPolicy | None = None,
        fence: Fence | None = None,
        failsafe: bool = True,
        unreachable_after: float = DEFAULT_UNREACHABLE_AFTER,
    ) -> None:
        # Every argument is checked before anything is built, started or run.
        given = assembly.check_arguments(
            cluster=cluster, services=services, rulesets=rulesets, datasources=datasources,
            host=host, executor=executor, executors=executors, policy=policy,
            history_size=history_size, roles=roles, states=states,
            reconcile_at_start=reconcile_at_start, retry=retry, fence=fence, failsafe=failsafe,
        )  # fmt: skip
        patience = check_seconds(unreachable_after, "unreachable_after", minimum=0.001)
        self.failsafe = given.failsafe
        self.cluster, self.host, self.executor = given.cluster, given.host, given.executor
        self.hosts = frozenset(given.executors)
        self._services = given.services
        self._state = ClusterState(
            cluster=self.cluster, host=self.host, hosts=self.hosts, policy=given.policy
        )
        self._lock = threading.RLock()
        self._history = History(given.history_size)
        self._hosts = Hosts(self.host, patience, self._history.record)
        executors = self._hosts.guard(given.executors)  # every command obeys self._hosts
        # Started only once the manager is built: its monitor and retries call into all of it.
        self._supervisor = Supervisor(
            interval=monitor_interval,
            on_retry=lambda service: retry_service(self._dispatcher, self._lock, service),
            on_monitor=lambda: monitor(self._dispatcher, self._lock),
            name=f"floatingip-supervisor-{self.cluster}",
        )
        self._engine = Engine(given.rulesets)
        self._dispatcher = Dispatcher(
            state=self._state,
            services=self._services,
            executors=executors,
            engine=self._engine,
            history=self._history,
            retries=Retries(given.retry, self._supervisor),
            fence=given.fence or DuplicateAddressFence(
                self._services, executors, needed=self._state.others_unknown
            ),
            hosts=self._hosts,
        )  # fmt: skip
        self._open = lifecycle.OpenGate(self._lock, self._dispatcher, self.cluster)
        try:
            lifecycle.start_up(self, self._dispatcher, self._lock, given, reconcile_at_start)
        except BaseException:
            lifecycle.abandon(self, self._dispatcher, self._supervisor, self._engine)
            raise
        release_freed_memory()  # what loading freed stays out of the idle manager's RSS
        self._supervisor.start()

    @classmethod
    def from_cluster_home(
        cls,
        cluster_home: str | Path,
        cluster: str,
        *,
        rules_dir: str | Path | None = None,
        host: str | None = None,
        executor: Executor | None = None,
        executors: Mapping[str, Executor] | None = None,
        fence: Fence | None = None,
        **options: Any,
    ) -> Manager:
        """Load a cluster's services, datasources and rule files (default: the shipped ones);
        ``options`` are the constructor's other keywords (states, monitor_interval, retry...)."""
        loaded = assembly.load_cluster_home(cluster_home, cluster, rules_dir, options, cls)
        return cls(host=host, executor=executor, executors=executors, fence=fence, **loaded)

    # -- changes ----------------------------------------------------------------------------

    def add_datasource(
        self,
        name: str,
        *,
        role: Role | str,
        host: str | None = None,
        state: State | str = State.OFFLINE,
    ) -> ChangeResult:
        """Declare a datasource (host defaults to its name); rules see it at once."""
        name = check_name(name, "datasource")
        host = check_optional_name(host, "host")
        datasource = DataSource(
            cluster=self.cluster,
            name=name,
            host=host if host is not None else name,
            role=parse_role(role),
            state=parse_state(state),
        )
        with self._open:
            if name in self._state.datasources:
                raise DataSourceError(f"datasource {name!r} already exists in {self.cluster!r}")
            return self._dispatcher.apply_datasource(datasource, None)

    def update_datasource(
        self, name: str, *, role: Role | str | None = None, state: State | str | None = None
    ) -> ChangeResult:
        """Apply a change of role and/or state; return once the commands it caused have run.

        Reporting the current state again re-evaluates the rules (an operator's retry).  Raises
        DataSourceError for an unknown datasource, role or state, changing nothing; a command
        that fails is reported in the result and the history, never raised.
        """
        if not isinstance(name, str):  # the hot path: a known name is checked by the lookup
            check_name(name, "datasource")
        new_role = parse_role(role) if role is not None else None
        new_state = parse_state(state) if state is not None else None
        if new_role is None and new_state is None:
            raise DataSourceError("update_datasource needs a role or a state")
        with self._open:
            old = self._state.known(name)
            return self._dispatcher.apply_datasource(
                old.changed(role=new_role, state=new_state), old
            )

    def recover(self, name: str) -> ChangeResult:
        """Bring datasource ``name`` back ONLINE, as a slave if it was a master and another
        datasource is the master now (the shell's ``datasource NAME recover``); UsageError,
        changing nothing, if it is already ONLINE."""
        name = check_name(name, "datasource")
        with self._open:
            role = self._state.recovery_role(name)
            return self.update_datasource(name, role=role, state=State.ONLINE)

    def welcome(self, name: str) -> ChangeResult:
        """Bring SHUNNED datasource ``name`` back ONLINE (the shell's ``datasource NAME
        welcome``); UsageError, changing nothing, if it is not SHUNNED."""
        name = check_name(name, "datasource")
        with self._open:
            self._state.check_welcome(name)
            return self.update_datasource(name, state=State.ONLINE)

    def set_policy(self, mode: PolicyMode | str) -> ChangeResult:
        """Set the policy mode; leaving MAINTENANCE brings the services in line with the facts."""
        new = parse_policy(mode)
        with self._open:
            return self._dispatcher.set_policy(new)

    def switch(self, to: str | None = None) -> SwitchResult:
        """Move the master role to ``to`` (default: the first ONLINE slave), as Tungsten's switch.

        The old master goes OFFLINE (its VIP is released) and becomes a slave, the new master is
        promoted (it takes the VIP), then the old master, if it was ONLINE, comes back ONLINE as
        a slave.  A step whose commands fail stops the switch there.  Raises UsageError, changing
        nothing, when there is no suitable target.
        """
        to = check_optional_name(to, "datasource")
        with self._open:
            old, target, plan = self._state.switch_plan(to)
            steps: list[ChangeResult] = []
            for name, role, state in plan:
                step = self.update_datasource(name, role=role, state=state)
                steps.append(step)
                if not step.ok:
                    break
            return SwitchResult(old_master=old, new_master=target, steps=tuple(steps))

    def run_service(self, name: str, action: str, *, host: str | None = None) -> CommandOutcome:
        """Run a service action by hand (the shell's ``service`` command); never raises for it.

        It does not change what the rules think is held; the outcome is recorded as usual.
        """
        name = check_name(name, "service", UsageError)
        check_instance(action, str, "action", "start, stop, restart or status")
        host = check_optional_name(host, "host", UsageError)
        with self._open:
            service = self._known_service(name)
            host = assembly.check_host(host if host is not None else self.host, self.hosts)
            intent = Intent(name, assembly.check_action(action), "manual")
            outcome = self._dispatcher.execute(service, intent, host)
            if outcome is None:
                raise self._open.closed_error()
            return outcome

    def revoke(self, service: str, reason: str) -> ChangeResult:
        """The fence says this host lost the right to hold ``service`` (a lease it could not
        renew): stop it at once, without the rules, and record why (a warning event, ``problems``).
        The rules are asked again on the next change or reconcile."""
        service = check_name(service, "service", UsageError)
        reason = check_instance(reason, str, "reason", "a sentence")
        with self._open:
            self._known_service(service)
            return failsafe.revoke(self._dispatcher, service, reason)

    def while_held(self, service: str, call: Callable[[], T]) -> T | None:
        """``call()`` under ``service``'s lock if this host holds it then (None, not called, if
        not): no start or stop of it overlaps, so nothing ``call`` does for the hold outlives
        it (the etcd agent re-takes each held VIP's lock this way).  drop_all takes no lock."""
        service = check_name(service, "service", UsageError)
        self._known_service(service)
        with self._dispatcher.service_locks[service]:
            if self.closed or service not in self.held:
                return None
            return call()

    def drop_all(self, reason: str) -> ChangeResult:
        """Emergency: stop every service on this host at once and mark it not held, without
        waiting for the manager's lock (a change in progress may hold it), e.g. when a fence's
        lease is lost.  A start already past the fence is stopped again when it returns, never
        marked held.  The fence is not told (nothing is confirmed released); the rules are asked
        again on the next change or reconcile.  Never raises for a command."""
        reason = check_instance(reason, str, "reason", "a sentence")
        return failsafe.drop_all(self._dispatcher, reason)

    # -- hosts that cannot be reached ---------------------------------------------------------

    def declare_dead(self, host: str, reason: str = "declared dead") -> ChangeResult:
        """The caller asserts ``host`` is fenced (powered off, STONITH confirmed): what it held
        is taken as not held and the rules act (the VIP moves to the master on another host,
        after the duplicate address check); nothing runs on ``host`` until :meth:`declare_alive`.
        An unreachable host is never given up on without this: its VIP may still be up.
        UsageError, changing nothing, for this manager's own host or one it does not act for."""
        host = check_name(host, "host", UsageError)
        reason = check_instance(reason, str, "reason", "a sentence")
        with self._open:
            self._other_host(host)
            if host in self._hosts.dead:
                raise UsageError(f"host {host!r} is already declared dead")
            return declarations.declare_dead(self._dispatcher, self._hosts, host, reason)

    def declare_alive(self, host: str) -> ChangeResult:
        """``host``, declared dead, is back: a VIP still on it is removed before anything else,
        then the manager acts for it again.  If that cannot be done (it is still unreachable, a
        stop fails), it stays dead: the result's errors say why.  UsageError if it is not dead."""
        host = check_name(host, "host", UsageError)
        with self._open:
            if host not in self._hosts.dead:
                raise UsageError(f"host {host!r} is not declared dead")
            return declarations.declare_alive(self._dispatcher, self._hosts, host)

    @property
    def dead(self) -> Mapping[str, str]:
        """The hosts declared dead, each with the reason given."""
        return MappingProxyType(dict(self._hosts.dead))

    @property
    def unreachable(self) -> Mapping[str, str]:
        """The hosts whose last command could not reach them, each with why."""
        return MappingProxyType(dict(self._hosts.unreachable))

    def _other_host(self, host: str) -> None:
        if host == self.host:
            raise UsageError(f"host {host!r} is this manager's own host: it cannot declare it dead")
        assembly.check_host(host, self.hosts)

    def _known_service(self, name: str) -> ServiceDefinition:
        service = self._services.get(name)
        if service is None:
            known = ", ".join(sorted(self._services)) or "none"
            raise UsageError(f"unknown service {name!r} (known: {known})")
        return service

    # -- reconcile, monitor, retries ------------------------------------------------------

    def reconcile(self, *, probe: bool = True) -> ChangeResult:
        """Compare each service's actual state with what the manager believes, correct the
        belief where it drifted (counted in ``repairs``), and let the rules act on the result:
        a VIP deleted by someone else is restored, a stray one released.  ``probe=False`` only
        asks the rules again (a start the fence refused may go now), reading no host."""
        with self._open:
            return reevaluate(self._dispatcher, sorted(self._services), "reconcile", probe=probe)

    # -- lifecycle --------------------------------------------------------------------------

    def wait_for_announcements(self, timeout: float | None = None) -> bool:
        """Wait for gratuitous ARP still being sent; False if some is still running at timeout."""
        if timeout is not None:
            timeout = check_seconds(timeout, "timeout")
        return self._dispatcher.announcer.wait(timeout)

    def close(self, timeout: float | None = None) -> ChangeResult:
        """Stop: the failsafe rules release what this host holds (unless in MAINTENANCE, or
        built with ``failsafe=False``: then what is held stays held, and the history says so).

        ``timeout`` (default 30 s) bounds the wait for the rules and for a change in progress.
        Past it (a consequence or a command that does not return), the manager says so (log and
        event) and runs the failsafe itself: it stops every service it holds, without the rules.
        """
        if timeout is None:
            wait = failsafe.DEFAULT_CLOSE_TIMEOUT
        else:
            wait = check_seconds(timeout, "timeout")
        if self.closed:
            return ChangeResult(change="manager closed")
        return failsafe.close(
            self._dispatcher, self._lock, self._supervisor, wait, release=self.failsafe
        )

    def __enter__(self) -> Manager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
