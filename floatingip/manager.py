"""The Manager: the facade a cluster manager imports.

It holds the cluster's datasources, the policy and the services, feeds every change to the rules
as facts, runs the service actions the rules ask for, and records everything in a bounded history
that listeners also receive.  It reconciles what it believes with what is really held at start,
on a monitor and on retries (floatingip.supervisor).

Changes are applied one at a time, in the order callers get the manager's lock; each call
returns after the commands it caused have run, so the commands of a service never interleave and
always run in the order of the changes that caused them.
"""

from __future__ import annotations

import inspect
import logging
import shlex
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

from floatingip.actions import ActionResult, perform, probe
from floatingip.commands import CommandResult, Executor, LocalExecutor
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
from floatingip.engine import Engine, Firing, RuleFailure
from floatingip.errors import (
    ConfigError,
    DataSourceError,
    EngineError,
    FloatingIPError,
    Problem,
    UsageError,
)
from floatingip.fence import Fence
from floatingip.rules import Intent, RuleSet, load_rules, shipped_rules_dir
from floatingip.service import ServiceDefinition, load_services
from floatingip.supervisor import DEFAULT_MONITOR_INTERVAL, RetryPolicy, Supervisor
from floatingip.validation import (
    check_callable,
    check_fact_identities,
    check_instance,
    check_items,
    check_mapping,
    check_name,
    check_optional_name,
    check_path,
    check_seconds,
)

__all__ = ["ChangeResult", "CommandOutcome", "Event", "Manager", "SwitchResult"]

logger = logging.getLogger(__name__)

DEFAULT_HISTORY = 1000
# A change whose consequences keep asking for commands is a rule loop, not a cluster event.
MAX_COMMANDS_PER_CHANGE = 64
# close() waits this long for the rules (and a change in progress) before running the failsafe
# itself; and a command this long past its own timeout is taken as wedged.
DEFAULT_CLOSE_TIMEOUT = 30.0
CLOSE_GRACE = 10.0


@dataclass(frozen=True)
class CommandOutcome:
    """A service action that ran (or could not run) because a rule asked for it."""

    service: str
    action: str
    rule: str
    datasource: str | None
    argv: tuple[str, ...]
    result: CommandResult | None
    error: FloatingIPError | None = None
    host: str = ""
    steps: tuple[CommandResult, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None and self.result.ok


@dataclass(frozen=True)
class ChangeResult:
    """What one change did: the commands it ran and the rule errors it met."""

    change: str
    commands: tuple[CommandOutcome, ...] = ()
    rule_errors: tuple[RuleFailure, ...] = ()
    rules_fired: tuple[str, ...] = ()
    engine_errors: tuple[FloatingIPError, ...] = ()

    @property
    def ok(self) -> bool:
        return (
            not self.rule_errors
            and not self.engine_errors
            and all(outcome.ok for outcome in self.commands)
        )

    @property
    def errors(self) -> list[str]:
        """Every failure, as a sentence for the operator."""
        messages = [str(error) for error in self.rule_errors]
        messages += [str(error) for error in self.engine_errors]
        messages += [str(outcome.error) for outcome in self.commands if outcome.error is not None]
        return messages


@dataclass(frozen=True)
class SwitchResult:
    """A switch of the master role: who was master, who is now, and each step's result."""

    old_master: str | None
    new_master: str
    steps: tuple[ChangeResult, ...]

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    @property
    def errors(self) -> list[str]:
        return [error for step in self.steps for error in step.errors]


@dataclass(frozen=True)
class Event:
    """One entry of the history, as listeners receive it."""

    # datasource, policy, command, announce, warning, drift, retry, rule-error, skipped, manager
    kind: str
    message: str
    ok: bool = True
    datasource: str | None = None
    service: str | None = None
    outcome: CommandOutcome | None = None
    time: float = field(default_factory=time.time)


Listener = Callable[[Event], None]


class Manager:
    """Keeps the VIP (and any other rule-driven service) in line with the cluster's datasources.

    ``host`` is this manager's host (default: the machine's name); ``executor`` runs its commands
    and ``executors`` maps other hosts it may act for to theirs.  ``roles`` and ``states`` give
    what is already known at start (datasources are OFFLINE otherwise); with
    ``reconcile_at_start`` the manager then reads what each service really holds before the rules
    may take anything.  ``monitor_interval`` seconds between drift checks (0: off); ``retry``
    bounds the retries of failed commands; ``history_size`` bounds the history.
    """

    _busy: str | None  # the change in progress (for close() to say what is wedged)
    _running: tuple[str, float] | None  # the command in progress, since when

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
    ) -> None:
        # Every argument is checked before anything is built, started or run.
        self._fence = None if fence is None else check_instance(fence, Fence, "fence", "a Fence")
        self.cluster = check_name(cluster, "cluster")
        host = check_optional_name(host, "host", UsageError)
        self.host = host if host is not None else check_name(socket.gethostname(), "this host")
        if executor is not None:
            check_instance(executor, Executor, "executor", "an Executor (with a run method)")
        self.executor: Executor = executor if executor is not None else LocalExecutor()
        # Other hosts this manager may act for, each through its own executor (a namespace, ssh).
        self._executors: dict[str, Executor] = {
            check_name(other, "host", UsageError): check_instance(
                runner, Executor, f"the executor of host {other!r}", "an Executor"
            )
            for other, runner in check_mapping(executors, "executors", optional=True).items()
        }
        self._executors.setdefault(self.host, self.executor)
        self.hosts = frozenset(self._executors)
        self._services = {
            check_name(name, "service", UsageError): check_instance(
                service, ServiceDefinition, f"service {name!r}", "a ServiceDefinition"
            )
            for name, service in check_mapping(services, "services").items()
        }
        self._rulesets = check_items(rulesets, RuleSet, "rulesets", "RuleSet")
        self._check_rules_have_their_services()
        declared = check_items(datasources, DataSource, "datasources", "DataSource")
        initial_roles, initial_states = self._check_initial_names(declared, roles, states)
        self._lock = threading.RLock()
        self._init_dispatch(services)
        self._datasources: dict[str, DataSource] = {}
        self._policy = parse_policy(policy)
        self._holders: dict[str, str] = {}  # service -> the datasource it was started for
        history_size = check_instance(history_size, int, "history_size", "a whole number")
        if history_size < 0:
            raise UsageError(f"history_size must be 0 or more, not {history_size}")
        self._history: deque[Event] = deque(maxlen=history_size)
        self._events_lock = threading.RLock()
        self._announcers: list[threading.Thread] = []
        self._listeners: list[Listener] = []
        self._closed = False
        self._problems: dict[str, str] = {}  # service -> its last failure, until it succeeds
        self._attempts: dict[str, int] = {}  # service -> retries so far
        if retry is not None:
            check_instance(retry, RetryPolicy, "retry", "a RetryPolicy")
        self._retry = retry if retry is not None else RetryPolicy()
        check_instance(reconcile_at_start, bool, "reconcile_at_start", "True or False")
        self.repairs = 0  # drift found and corrected by reconcile
        check_fact_identities(
            [
                (self._manager_fact("STARTING")["id"], None),
                (self._policy_fact()["id"], None),
                *((self._service_fact(n)["id"], s.path) for n, s in self._services.items()),
                *((self._datasource_fact(ds, None)["id"], ds.path) for ds in declared),
            ]
        )
        # Started only once the manager is built: its monitor and retries call into all of it.
        self._supervisor = Supervisor(
            interval=monitor_interval,
            on_retry=self._retry_service,
            on_monitor=self._monitor,
            name=f"floatingip-supervisor-{cluster}",
        )
        self._engine = Engine(self._rulesets)
        try:
            self._start_up(declared, initial_roles, initial_states, reconcile_at_start)
        except BaseException:
            self._abandon()
            raise
        self._supervisor.start()

    def _abandon(self) -> None:
        """Construction failed: close (the failsafe releases what start-up may have taken: no
        caller will ever close this manager) and leave nothing running."""
        try:
            self.close()
        except BaseException:
            logger.exception("closing manager of cluster %s after a failed start", self.cluster)
        finally:
            self._closed = True
            self._supervisor.stop(timeout=0)
            self._engine.close()

    def _start_up(
        self,
        declared: list[DataSource],
        roles: Mapping[str, Role],
        states: Mapping[str, State],
        reconcile_at_start: bool,
    ) -> None:
        # STARTING: rules that take a VIP wait until what is really held here is known
        self._engine.replace(self._manager_fact("STARTING"))
        self._engine.replace(self._policy_fact())
        for name in self._services:
            self._engine.replace(self._service_fact(name))
        for datasource in declared:
            self.add_datasource(
                datasource.name,
                role=roles.get(datasource.name, datasource.role),
                host=datasource.host,
                state=states.get(datasource.name, State.OFFLINE),
            )
        self._unprobeable = self._warn_unprobeable()
        if reconcile_at_start:
            self.reconcile()
        self._enter_running()
        logger.info(
            "manager for cluster %s on host %s: services %s, rulesets %s",
            self.cluster,
            self.host,
            ", ".join(self._services) or "none",
            ", ".join(self._engine.ruleset_names),
        )

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
        **options: Any,
    ) -> Manager:
        """Load a cluster's services, datasources and rule files (default: the shipped ones)."""
        cluster_home = check_path(cluster_home, "cluster_home")
        cluster = check_name(cluster, "cluster")
        rules_dir = check_path(rules_dir, "rules_dir") if rules_dir is not None else None
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise UsageError(
                f"unknown option(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(sorted(_OPTIONS))}"
            )
        return cls(
            cluster=cluster,
            services=load_services(cluster_home, cluster),
            datasources=load_datasources(cluster_home, cluster).values(),
            rulesets=load_rules(rules_dir if rules_dir is not None else shipped_rules_dir()),
            host=host,
            executor=executor,
            executors=executors,
            **options,
        )

    @staticmethod
    def _check_initial_names(
        declared: list[DataSource],
        roles: Mapping[str, Role | str] | None,
        states: Mapping[str, State | str] | None,
    ) -> tuple[dict[str, Role], dict[str, State]]:
        """The roles and states known at start, parsed; DataSourceError for an unknown name."""
        known = {datasource.name for datasource in declared}
        parsed: list[dict[str, Any]] = []
        for what, given, parse in (("roles", roles, parse_role), ("states", states, parse_state)):
            values = {
                check_name(name, "datasource"): parse(value)
                for name, value in check_mapping(given, what, optional=True).items()
            }
            unknown = sorted(set(values) - known)
            if unknown:
                raise DataSourceError(
                    f"{what} given for unknown datasource(s) {', '.join(unknown)} "
                    f"(known: {', '.join(sorted(known)) or 'none'})"
                )
            parsed.append(values)
        return parsed[0], parsed[1]

    def _warn_unprobeable(self) -> frozenset[str]:
        """Services whose state cannot be read: reconcile and monitor leave them alone."""
        off = set()
        for name, service in self._services.items():
            if not service.reports_held:
                off.add(name)
                message = (
                    f"reconcile is off for service {name!r}: it needs command.status and a VIP "
                    "address (vip.address, or the one IPv4 address in command.start)"
                )
                logger.warning("%s", message)
                self._record(Event("warning", message, ok=False, service=name))
        return frozenset(off)

    def _check_rules_have_their_services(self) -> None:
        problems = [
            Problem(
                ruleset.path,
                None,
                f"ruleset {ruleset.name!r} acts on service {needed!r}, which cluster "
                f"{self.cluster!r} does not define (service/{needed}.properties)",
            )
            for ruleset in self._rulesets
            for needed in ruleset.services
            if needed not in self._services
        ]
        if problems:
            raise ConfigError(problems)

    # -- facts ------------------------------------------------------------------------------

    def _manager_fact(self, state: str) -> dict[str, Any]:
        return {"id": "manager", "kind": "manager", "host": self.host, "state": state}

    def _policy_fact(self) -> dict[str, Any]:
        return {"id": "policy", "kind": "policy", "mode": self._policy.value}

    def _service_fact(self, name: str) -> dict[str, Any]:
        holder = self._holders.get(name)
        return {
            "id": f"service:{name}",
            "kind": "service",
            "name": name,
            "held": holder is not None,
            "holder": holder or "",
        }

    def _datasource_fact(
        self, datasource: DataSource, previous: DataSource | None
    ) -> dict[str, Any]:
        return {
            "id": f"datasource:{datasource.name}",
            "kind": "datasource",
            "cluster": datasource.cluster,
            "name": datasource.name,
            "host": datasource.host,
            "role": datasource.role.value,
            "state": datasource.state.value,
            "local": datasource.host in self.hosts,
            "previous_role": previous.role.value if previous else "",
            "previous_state": previous.state.value if previous else "",
        }

    # -- what the cluster manager reads -----------------------------------------------------

    @property
    def datasources(self) -> Mapping[str, DataSource]:
        with self._state_lock:
            return MappingProxyType(dict(self._datasources))

    def datasource(self, name: str) -> DataSource:
        """One datasource; DataSourceError naming the known ones if there is none of that name."""
        name = check_name(name, "datasource")
        with self._state_lock:
            return self._known(name)

    @property
    def services(self) -> Mapping[str, ServiceDefinition]:
        return MappingProxyType(self._services)

    @property
    def policy(self) -> PolicyMode:
        return self._policy

    @property
    def held(self) -> Mapping[str, str]:
        """The services held on this host, each with the datasource it was started for."""
        with self._state_lock:
            return MappingProxyType(dict(self._holders))

    @property
    def history(self) -> list[Event]:
        with self._events_lock:
            return list(self._history)

    @property
    def closed(self) -> bool:
        return self._closed

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` for every event; its exceptions are logged, never raised."""
        check_callable(listener, "listener")
        with self._events_lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._events_lock:
            if listener not in self._listeners:
                raise UsageError(f"listener {listener!r:.60} is not registered")
            self._listeners.remove(listener)

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
        self._check_open()  # before the lock, which a wedged change may hold after close()
        with self._lock:
            self._check_open()
            if name in self._datasources:
                raise DataSourceError(f"datasource {name!r} already exists in {self.cluster!r}")
            return self._apply_datasource(datasource, None, f"datasource {name} added")

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
        self._check_open()  # before the lock, which a wedged change may hold after close()
        with self._lock:
            self._check_open()
            old = self._known(name)
            new = old.changed(role=new_role, state=new_state)
            parts = []
            if new.role is not old.role:
                parts.append(f"role {old.role.value} -> {new.role.value}")
            if new.state is not old.state:
                parts.append(f"state {old.state.value} -> {new.state.value}")
            description = f"datasource {name}: {', '.join(parts) or new.state.value + ' again'}"
            return self._apply_datasource(new, old, description)

    def set_policy(self, mode: PolicyMode | str) -> ChangeResult:
        """Set the policy mode; leaving MAINTENANCE brings the services in line with the facts."""
        new = parse_policy(mode)
        self._check_open()  # before the lock, which a wedged change may hold after close()
        with self._lock:
            self._check_open()
            description = f"policy {self._policy} -> {new}"
            self._policy = new
            self._record(Event("policy", description))
            return self._change(description, self._policy_fact())

    def switch(self, to: str | None = None) -> SwitchResult:
        """Move the master role to ``to`` (default: the first ONLINE slave), as Tungsten's switch.

        The old master goes OFFLINE (its VIP is released) and becomes a slave, the new master is
        promoted (it takes the VIP), then the old master, if it was ONLINE, comes back ONLINE as
        a slave.  A step
        whose commands fail stops the switch there.  Raises UsageError, changing nothing, when
        there is no suitable target.
        """
        to = check_optional_name(to, "datasource")
        self._check_open()  # before the lock, which a wedged change may hold after close()
        with self._lock:
            self._check_open()
            old = self._single_master()
            target = self.switch_target(to)
            was_online = old is not None and self._datasources[old].state is State.ONLINE
            plan: list[tuple[str, Role | None, State | None]] = []
            if old is not None and was_online:
                plan.append((old, None, State.OFFLINE))
            if old is not None:
                plan.append((old, Role.SLAVE, None))
            plan.append((target, Role.MASTER, None))
            if old is not None and was_online:
                plan.append((old, None, State.ONLINE))
            steps: list[ChangeResult] = []
            for name, role, state in plan:
                step = self.update_datasource(name, role=role, state=state)
                steps.append(step)
                if not step.ok:
                    break
            return SwitchResult(old, target, tuple(steps))

    def _single_master(self) -> str | None:
        masters = sorted(n for n, ds in self._datasources.items() if ds.role is Role.MASTER)
        if len(masters) > 1:
            raise UsageError(f"cannot switch: more than one master ({', '.join(masters)})")
        return masters[0] if masters else None

    def switch_target(self, to: str | None = None) -> str:
        """The datasource a switch would promote; UsageError if it cannot (see :meth:`switch`)."""
        to = check_optional_name(to, "datasource")
        with self._lock:
            old = self._single_master()
            return self._switch_target(to, old)

    def _switch_target(self, to: str | None, old: str | None) -> str:
        if to is None:
            candidates = sorted(
                name
                for name, ds in self._datasources.items()
                if ds.role is Role.SLAVE and ds.state is State.ONLINE
            )
            if not candidates:
                raise UsageError("cannot switch: no ONLINE slave to promote")
            return candidates[0]
        target = self._known(to)
        if to == old:
            raise UsageError(f"cannot switch to {to!r}: it is already the master")
        if target.state is not State.ONLINE:
            raise UsageError(f"cannot switch to {to!r}: it is {target.state}, not ONLINE")
        return to

    def run_service(self, name: str, action: str, *, host: str | None = None) -> CommandOutcome:
        """Run a service action by hand (the shell's ``service`` command); never raises for it.

        It does not change what the rules think is held; the outcome is recorded as usual.
        """
        name = check_name(name, "service", UsageError)
        check_instance(action, str, "action", "start, stop, restart or status")
        host = check_optional_name(host, "host", UsageError)
        self._check_open()  # before the lock, which a wedged change may hold after close()
        with self._lock:
            self._check_open()
            service = self._services.get(name)
            if service is None:
                known = ", ".join(sorted(self._services)) or "none"
                raise UsageError(f"unknown service {name!r} (known: {known})")
            if action not in service.commands:
                raise UsageError(
                    f"unknown action {action!r}; expected start, stop, restart, status"
                )
            host = host if host is not None else self.host
            if host not in self.hosts:
                raise UsageError(
                    f"unknown host {host!r}: this manager acts for {', '.join(sorted(self.hosts))}"
                )
            outcome = self._execute(service, Intent(name, action, "manual"), host)
            if outcome is None:
                raise FloatingIPError(f"the manager of cluster {self.cluster!r} is closed")
            return outcome

    # -- reconcile, monitor, retries ------------------------------------------------------

    def _others_unknown(self) -> bool:
        """Whether a datasource runs on a host this manager cannot see: then a VIP released
        there is not confirmed gone, and taking it needs duplicate address detection first."""
        return any(ds.host not in self.hosts for ds in self._datasources.values())

    @property
    def problems(self) -> Mapping[str, str]:
        """Each service's last failure (with its retry state), until it next succeeds."""
        with self._state_lock:
            pending = self._supervisor.pending()
            shown = {}
            for service, message in self._problems.items():
                attempts = self._attempts.get(service, 0)
                if service in pending:
                    message += (
                        f" (retry {attempts}/{self._retry.attempts} in {pending[service]:.0f}s)"
                    )
                elif attempts >= self._retry.attempts and self._retry.attempts:
                    message += f" (gave up after {attempts} retries; a new change retries)"
                shown[service] = message
            return MappingProxyType(shown)

    def _note_outcome(self, outcome: CommandOutcome) -> None:
        if outcome.action not in ("start", "stop", "restart"):
            return
        service = outcome.service
        if outcome.ok:
            with self._state_lock:
                self._problems.pop(service, None)
                self._attempts.pop(service, None)
            self._supervisor.cancel(service)
            return
        with self._state_lock:
            self._problems[service] = f"{outcome.action} on {outcome.host} failed: {outcome.error}"
        attempt = self._attempts.get(service, 0) + 1
        if attempt > self._retry.attempts:
            self._record(
                Event(
                    "warning",
                    f"{service}: giving up after {self._retry.attempts} retries",
                    ok=False,
                    service=service,
                )
            )
            return
        with self._state_lock:
            self._attempts[service] = attempt
        self._supervisor.schedule(service, self._retry.delay(attempt))

    def _retry_service(self, service: str) -> None:
        with self._lock:
            if self._closed:
                return
            attempt = self._attempts.get(service, 0)
            self._record(Event("retry", f"{service}: retry {attempt}", service=service))
            self._reevaluate([service], f"retry {attempt} of {service}")

    def _monitor(self) -> None:
        with self._lock:
            if not self._closed:
                self._reevaluate(sorted(self._services), "monitor")

    def reconcile(self) -> ChangeResult:
        """Compare each service's actual state with what the manager believes, correct the
        belief where it drifted (counted in ``repairs``), and let the rules act on the result:
        a VIP deleted by someone else is restored, a stray one released."""
        self._check_open()  # before the lock, which a wedged change may hold after close()
        with self._lock:
            self._check_open()
            return self._reevaluate(sorted(self._services), "reconcile")

    def _reevaluate(self, names: Iterable[str], description: str) -> ChangeResult:
        previous, self._busy = self._busy, description
        try:
            return self._reevaluate_now(names, description)
        finally:
            self._busy = previous

    def _reevaluate_now(self, names: Iterable[str], description: str) -> ChangeResult:
        everything = Firing()
        commands: list[CommandOutcome] = []
        engine_errors: list[FloatingIPError] = []
        for name in names:
            if name not in self._unprobeable:
                commands += self._correct_belief(name)
            result = self._settle(
                f"{description}: {name}", self._engine.replace(self._service_fact(name))
            )
            commands += result.commands
            everything.fired += result.rules_fired
            everything.errors += result.rule_errors
            engine_errors += result.engine_errors
        return ChangeResult(
            description, tuple(commands), tuple(everything.errors), tuple(everything.fired),
            tuple(engine_errors),
        )  # fmt: skip

    def _correct_belief(self, name: str) -> list[CommandOutcome]:
        """Probe every host this manager acts for; make ``held`` match what is really there."""
        service = self._services[name]
        actual = {host: probe(service, executor) for host, executor in self._executors.items()}
        believed = self._holders.get(name)
        believed_host = self._host_of(believed) if believed is not None else None
        holding = sorted(host for host, held in actual.items() if held)
        unknown = sorted(host for host, held in actual.items() if held is None)
        if believed_host in unknown or (unknown and not holding):
            logger.warning(
                "%s: cannot read its state on %s; left as it is", name, ", ".join(unknown)
            )
            return []
        expected = [believed_host] if believed_host is not None else []
        if holding == expected:
            return []
        self.repairs += 1
        found = ", ".join(holding) or "nowhere"
        message = f"{name}: drift: expected on {', '.join(expected) or 'no host'}, found on {found}"
        logger.warning("%s; repairing", message)
        self._record(Event("drift", message, ok=False, service=name))
        keep = believed_host if believed_host in holding else holding[0] if holding else None
        keeper = self._local_datasource_on(keep) if keep is not None else None
        with self._state_lock:
            if keeper is None:
                self._holders.pop(name, None)
            else:
                self._holders[name] = keeper
        outcomes = []
        for host in holding:
            stray = host != keep or keeper is None  # held where no datasource should hold it
            if stray and self._policy is not PolicyMode.MAINTENANCE:
                outcome = self._execute(service, Intent(name, "stop", "reconcile"), host)
                if outcome is not None:
                    outcomes.append(outcome)
        return outcomes

    def _host_of(self, datasource: str) -> str:
        found = self._datasources.get(datasource)
        return found.host if found is not None else self.host

    def _local_datasource_on(self, host: str) -> str | None:
        """The datasource a VIP found on ``host`` belongs to: its master, else its first."""
        on_host = sorted(
            (ds.role is not Role.MASTER, name)
            for name, ds in self._datasources.items()
            if ds.host == host
        )
        return on_host[0][1] if on_host else None

    def close(self, timeout: float | None = None) -> ChangeResult:
        """Stop: the failsafe rules release what this host holds (unless in MAINTENANCE).

        ``timeout`` (default 30 s) bounds the wait for the rules and for a change in progress.
        Past it (a consequence or a command that does not return), the manager says so (log and
        event) and runs the failsafe itself: it stops every service it holds, without the rules.
        """
        wait = DEFAULT_CLOSE_TIMEOUT if timeout is None else check_seconds(timeout, "timeout")
        if self._closed:
            return ChangeResult("manager closed")
        done: list[ChangeResult | BaseException] = []

        def close_with_rules() -> None:
            try:
                done.append(self._close_with_rules())
            except BaseException as exc:  # re-raised in the caller's thread
                done.append(exc)

        # A worker, so that a wedged engine call or lock holder cannot wedge the failsafe too.
        worker = threading.Thread(
            target=close_with_rules, name=f"floatingip-close-{self.cluster}", daemon=True
        )
        worker.start()
        worker.join(wait)
        result = None if done else self._close_without_rules(wait)
        if result is None:  # the rules finished after all
            worker.join()
            outcome = done[0]
            if isinstance(outcome, BaseException):
                raise outcome
            result = outcome
        self.wait_for_announcements(timeout=30)
        with self._state_lock:
            still_held = ", ".join(self._holders) or "nothing"
        self._record(Event("manager", f"manager closed; holding {still_held}"))
        return result

    def _close_with_rules(self) -> ChangeResult:
        with self._lock:
            if self._closed:  # closed without the rules while this waited: free the engine
                self._engine.close()
                return ChangeResult("manager closed")
            self._supervisor.stop(timeout=0)
            try:
                result = self._change("manager stopping", self._manager_fact("STOPPING"))
                return self._release_what_the_rules_kept(result)
            finally:
                with self._state_lock:
                    self._closed = True
                self._engine.close()

    def _release_what_the_rules_kept(self, result: ChangeResult) -> ChangeResult:
        """Failsafe on close is the Manager's promise, not a rule author's: stop whatever the
        rules left held (a rule file without a failsafe rule, or one that failed)."""
        if self._policy is PolicyMode.MAINTENANCE:
            return result
        with self._state_lock:
            kept = sorted(self._holders)
        commands = list(result.commands)
        for name in kept:
            message = f"closing: the rules did not release {name}; the manager's failsafe stops it"
            logger.warning("%s", message)
            self._record(Event("warning", message, ok=False, service=name))
            outcome = self._failsafe_stop(name)
            if outcome is not None:
                commands.append(outcome)
        return replace(result, commands=tuple(commands)) if kept else result

    def _close_without_rules(self, waited: float) -> ChangeResult | None:
        """The failsafe when the rules cannot run: stop what is held, each service after the
        command it may be running.  None if the manager closed normally meanwhile."""
        with self._state_lock:
            if self._closed:
                return None
            self._closed = True  # from now on nothing is started or stopped but by the failsafe
        self._supervisor.stop(timeout=0)
        now = time.monotonic()
        busy, running = self._busy, self._running
        what = f"the change {busy!r}" if busy is not None else "a change"
        if running is not None:
            what += f", running {running[0]} (for {now - running[1]:.1f} s)"
        policy = self._policy
        release = "nothing (policy MAINTENANCE)" if policy is PolicyMode.MAINTENANCE else (
            "what this host holds, without the rules"
        )  # fmt: skip
        message = (
            f"closing: {what} has not returned after {waited:g} s (a rule's consequence or a "
            f"command is wedged); the manager releases {release}"
        )
        logger.error("%s", message)
        self._record(Event("manager", message, ok=False))
        commands = []
        if policy is not PolicyMode.MAINTENANCE:
            for name in sorted(self._services):
                outcome = self._failsafe_stop(name)
                if outcome is not None:
                    commands.append(outcome)
        # close_with_rules, still waiting, frees the engine if the wedged call ever returns
        return ChangeResult("manager stopping", tuple(commands), (), (), (EngineError(message),))

    def _failsafe_stop(self, name: str) -> CommandOutcome | None:
        service = self._services[name]
        lock = self._service_locks[name]
        # after a command of this service that is running, which has its own timeout
        acquired = lock.acquire(timeout=service.timeout + CLOSE_GRACE)
        if not acquired:
            message = (
                f"{name}: a command has not returned {service.timeout + CLOSE_GRACE:g} s past "
                "its timeout; running the failsafe stop anyway"
            )
            logger.error("%s", message)
            self._record(Event("warning", message, ok=False, service=name))
        try:
            with self._state_lock:
                holder = self._holders.get(name)
            if holder is None:
                return None
            host = self._host_of(holder) if holder else self.host
            intent = Intent(name, "stop", "failsafe (without the rules)", holder or None)
            return self._perform(service, intent, host, track=True)
        finally:
            if acquired:
                lock.release()

    def __enter__(self) -> Manager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise FloatingIPError(f"the manager of cluster {self.cluster!r} is closed")

    def _known(self, name: str) -> DataSource:
        try:
            return self._datasources[name]
        except KeyError:
            known = ", ".join(sorted(self._datasources)) or "none"
            raise DataSourceError(
                f"unknown datasource {name!r} in cluster {self.cluster!r} (known: {known})"
            ) from None

    def _apply_datasource(
        self, new: DataSource, old: DataSource | None, description: str
    ) -> ChangeResult:
        previous, self._busy = self._busy, description
        try:
            firing = self._engine.replace(self._datasource_fact(new, old))
            with self._state_lock:
                self._datasources[new.name] = new
            self._record(Event("datasource", description, datasource=new.name))
            return self._settle(description, firing)
        finally:
            self._busy = previous

    # -- running what the rules ask for -----------------------------------------------------

    def _init_dispatch(self, services: Mapping[str, ServiceDefinition]) -> None:
        """What dispatching needs, set before the first fact reaches the engine."""
        # STARTING until reconcile has learned what is held: no start runs before, whatever the
        # rules say; the rules are asked again once RUNNING (_enter_running).
        self._phase = "STARTING"
        self._deferred: set[str] = set()  # services whose start waited for RUNNING
        # Reads (held, datasources, problems) take this short lock, never the manager's, so that
        # they do not wait behind a command; it is held only to change or copy the state.
        self._state_lock = threading.Lock()
        # One per service: its commands never overlap, even when close() runs the failsafe
        # while a wedged change holds the manager's lock.
        self._service_locks = {name: threading.RLock() for name in services}
        self._busy = None
        self._running = None

    def _enter_running(self) -> None:
        with self._lock:
            self._phase = "RUNNING"
            self._change("manager running", self._manager_fact("RUNNING"))
            if not self._deferred:
                return
            # A rule that does not wait for RUNNING asked to start something while the manager
            # was starting: ask the rules again, now that what is held is known.
            services, self._deferred = sorted(self._deferred), set()
            facts = self._engine.facts
            again = [f for f in facts.values() if f.get("kind") == "datasource"]
            again += [self._service_fact(name) for name in services]
            for fact in again:
                self._change(f"manager running: {fact['id']} again", fact)

    def _change(self, description: str, fact: dict[str, Any]) -> ChangeResult:
        """Assert ``fact`` and run what the rules ask for."""
        previous, self._busy = self._busy, description
        try:
            return self._settle(description, self._engine.replace(fact))
        finally:
            self._busy = previous

    def _settle(self, description: str, firing: Firing) -> ChangeResult:
        """Run the intents of ``firing`` and of the service-fact changes they cause, in order."""
        if not firing.intents and not firing.errors:  # most changes: the rules ask for nothing
            return ChangeResult(description, (), (), tuple(firing.fired))
        everything = Firing()
        everything.extend(firing)
        pending = deque(firing.intents)
        commands: list[CommandOutcome] = []
        engine_errors: list[FloatingIPError] = []
        for rule_error in firing.errors:
            self._record(Event("rule-error", str(rule_error), ok=False))
        while pending:
            if len(commands) >= MAX_COMMANDS_PER_CHANGE:
                loop = EngineError(
                    f"{description}: the rules asked for more than {MAX_COMMANDS_PER_CHANGE} "
                    "commands; they loop (a rule undoes what another does)"
                )
                self._record(Event("rule-error", str(loop), ok=False))
                engine_errors.append(loop)
                break
            intent = pending.popleft()
            outcome = self._run_intent(intent)
            if outcome is None:
                continue
            commands.append(outcome)
            self._note_outcome(outcome)
            if outcome.ok and intent.action in ("start", "stop"):  # held changed (_perform)
                follow_up = self._engine.replace(self._service_fact(intent.service))
                everything.extend(follow_up)
                for rule_error in follow_up.errors:
                    self._record(Event("rule-error", str(rule_error), ok=False))
                pending.extend(follow_up.intents)
        return ChangeResult(
            description,
            tuple(commands),
            tuple(everything.errors),
            tuple(everything.fired),
            tuple(engine_errors),
        )

    def _run_intent(self, intent: Intent) -> CommandOutcome | None:
        service = self._services.get(intent.service)
        if service is None:
            unknown = FloatingIPError(
                f"rule {intent.rule!r} asked to {intent.action} service {intent.service!r}, "
                f"which cluster {self.cluster!r} does not define"
            )
            return self._finish(intent, ActionResult((), None, unknown), self.host)
        if self._policy is PolicyMode.MAINTENANCE:
            self._skip(intent, "the policy is MAINTENANCE")
            return None
        if intent.action in ("start", "restart") and self._phase == "STARTING":
            self._deferred.add(intent.service)
            self._skip(
                intent,
                "the manager is starting: nothing is taken before reconcile has learned what "
                "is held; the rules are asked again once it runs",
            )
            return None
        held = intent.service in self._holders
        if intent.action == "start" and held:
            self._skip(intent, f"already held (for {self._holders[intent.service] or '-'})")
            return None
        if intent.action == "stop" and not held:
            self._skip(intent, "not held here")
            return None
        datasource = self._datasources.get(intent.datasource or "")
        host = datasource.host if datasource else self.host
        return self._execute(service, intent, host, track=True)

    def _execute(
        self, service: ServiceDefinition, intent: Intent, host: str, *, track: bool = False
    ) -> CommandOutcome | None:
        """Run ``intent`` unless the manager closed meanwhile (None); ``track``: a start or stop
        that succeeds changes what is held."""
        with self._service_locks[service.name]:
            if self._closed:  # close() ran the failsafe while this change was wedged
                self._skip(intent, "the manager is closed")
                return None
            return self._perform(service, intent, host, track=track)

    def _perform(
        self, service: ServiceDefinition, intent: Intent, host: str, *, track: bool
    ) -> CommandOutcome:
        """Run ``intent`` (the caller holds the service's lock)."""
        executor = self._executors.get(host)
        if executor is None:
            acts_for = ", ".join(sorted(self.hosts))
            error = FloatingIPError(
                f"no executor for host {host!r}: this manager acts for {acts_for}"
            )
            return self._finish(intent, ActionResult((), None, error), host)
        if self._fence is not None and intent.action in ("start", "restart"):
            answer = self._fence.acquire(service.name, host=host, datasource=intent.datasource)
            if not answer.granted:
                refused = FloatingIPError(f"the fence refused the start: {answer.reason}")
                return self._finish(intent, ActionResult((), None, refused), host)
        self._running = (f"{service.name} {intent.action} on {host}", time.monotonic())
        try:
            action = perform(
                service,
                intent.action,
                executor,
                check_duplicates=intent.action in ("start", "restart") and self._others_unknown(),
            )
        finally:
            self._running = None
        if track and action.ok and intent.action in ("start", "stop"):
            # under the service's lock: the failsafe sees what this command did
            with self._state_lock:
                if intent.action == "start":
                    self._holders[intent.service] = intent.datasource or ""
                else:
                    self._holders.pop(intent.service, None)
        stopped = action.ok if intent.action == "stop" else action.held is False  # a failed start
        if self._fence is not None and intent.action != "status" and stopped:
            self._fence.release(service.name, host=host)  # the VIP is confirmed gone
        outcome = self._finish(intent, action, host)
        if action.ok and action.announce is not None:
            self._announce(service, action.announce, executor, host)
        return outcome

    def _announce(
        self, service: ServiceDefinition, argv: tuple[str, ...], executor: Executor, host: str
    ) -> None:
        """Gratuitous ARP in the background: arping takes a second per packet, and the VIP
        already answers; a failure is a warning (clients learn the move when their ARP cache
        entry expires), never a failed start."""
        count = service.vip.arp_count if service.vip is not None else 1

        def announce() -> None:
            where = f"{service.name} on {host}"
            try:
                result = executor.run(argv, timeout=count + 5.0, check=False)
            except FloatingIPError as exc:
                self._record(
                    Event(
                        "warning",
                        f"{where}: gratuitous ARP not sent: {exc}",
                        ok=False,
                        service=service.name,
                    )
                )
                return
            if result.ok:
                self._record(
                    Event(
                        "announce",
                        f"{where}: gratuitous ARP sent ({shlex.join(argv)})",
                        service=service.name,
                    )
                )
            else:
                detail = (
                    result.stderr.strip() or result.stdout.strip() or "no output"
                ).splitlines()
                self._record(
                    Event(
                        "warning",
                        f"{where}: gratuitous ARP failed: {detail[-1]}",
                        ok=False,
                        service=service.name,
                    )
                )

        thread = threading.Thread(
            target=announce, name=f"floatingip-arp-{service.name}", daemon=True
        )
        with self._events_lock:
            self._announcers = [t for t in self._announcers if t.is_alive()]
            self._announcers.append(thread)
        thread.start()

    def wait_for_announcements(self, timeout: float | None = None) -> bool:
        """Wait for gratuitous ARP still being sent; False if some is still running at timeout."""
        if timeout is not None:
            timeout = check_seconds(timeout, "timeout")
        with self._events_lock:
            threads = list(self._announcers)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)

    def _skip(self, intent: Intent, why: str) -> None:
        message = f"{intent.service} {intent.action} not run ({why}); asked by rule {intent.rule!r}"
        logger.info("%s", message)
        self._record(
            Event("skipped", message, datasource=intent.datasource, service=intent.service)
        )

    def _finish(self, intent: Intent, action: ActionResult, host: str) -> CommandOutcome:
        outcome = CommandOutcome(
            intent.service,
            intent.action,
            intent.rule,
            intent.datasource,
            action.argv,
            action.result,
            action.error,
            host,
            action.steps,
            action.notes,
        )
        if outcome.ok:
            message = f"{intent.service} {intent.action} on {host}: ran {shlex.join(action.argv)}"
            if action.notes:
                message += f" ({'; '.join(action.notes)})"
            logger.info("%s (rule %r)", message, intent.rule)
        else:
            message = f"{intent.service} {intent.action} on {host} failed: {action.error}"
            logger.error("%s (rule %r)", message, intent.rule)
        self._record(
            Event(
                "command",
                message,
                ok=outcome.ok,
                datasource=intent.datasource,
                service=intent.service,
                outcome=outcome,
            )
        )
        return outcome

    def _record(self, event: Event) -> None:
        # Its own lock: gratuitous ARP threads record too, while a change may hold the manager.
        with self._events_lock:
            self._history.append(event)
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("listener %r failed on %s", listener, event.message)


# What from_cluster_home passes on to the constructor (it loads or takes the others itself).
_OPTIONS = frozenset(inspect.signature(Manager).parameters) - {
    "cluster",
    "services",
    "datasources",
    "rulesets",
    "host",
    "executor",
    "executors",
}
