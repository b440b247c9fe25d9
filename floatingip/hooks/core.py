"""What every cluster manager's hook shares: the plan an event maps to, the lock that serializes
invocations, and the one-shot Manager that carries the plan out.

A hook is a short process that a cluster manager (Patroni, repmgr, MHA, orchestrator) starts on an
event.  It maps the event to one datasource's new role and state (a :class:`Plan`), takes the
lock, builds a Manager for the host concerned with that fact already known, lets it reconcile
(it learns what is really held) and the rules act, and closes it without its failsafe: the VIP it
should hold stays when the process ends.  Running the same hook twice changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from floatingip.commands import Executor, LocalExecutor
from floatingip.datasource import DataSource, Role, State, load_datasources
from floatingip.errors import DuplicateAddressError, UsageError
from floatingip.hooks.lock import DEFAULT_LOCK_TIMEOUT, HookLock, HookLockTimeout, lock_path
from floatingip.hooks.order import CallOrder, Recorded, process_start
from floatingip.hooks.timing import Timeline
from floatingip.hosts import transport_of
from floatingip.manager import Manager
from floatingip.results import CommandOutcome, Event
from floatingip.ssh import SshExecutor, SshTarget
from floatingip.supervisor import RetryPolicy
from floatingip.vocabulary import EventKind

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "EXIT_DONE",
    "EXIT_FAILED",
    "HookContext",
    "HookLock",
    "HookLockTimeout",
    "Plan",
    "Report",
    "find_datasource",
    "lock_path",
    "run_plan",
]

logger = logging.getLogger(__name__)

EXIT_DONE = 0
EXIT_FAILED = 1
# Between starts refused while another host still has the VIP (Patroni runs the old leader's
# on_stop and the new one's on_role_change at once).  Short: each attempt paces itself (it reads
# the addresses twice and starts a probe, which answers as soon as the holder does), a refusal
# changes nothing, and the VIP comes up that much sooner after the release; the attempts
# stop at --wait-for-release, and the log says each message once in a row.
RELEASE_POLL = 0.02


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What an event means for the VIP: ``datasource`` (on ``host``) becomes ``role`` and
    ``state``; or, with no datasource, nothing to do (``why`` says why).  ``action`` is None
    for a read-only check (MHA's status).  A failure exits ``failure_exit`` (MHA: 10 means
    "failed, but go on with the failover")."""

    event: str
    why: str
    datasource: str | None = None
    host: str | None = None
    role: Role | None = None
    state: State | None = None
    check_only: bool = False
    failure_exit: int = EXIT_FAILED
    ssh: SshTarget | None = None  # how the tool reaches ``host`` (MHA passes its ssh settings)
    # the tool's next call cancels this one (Patroni): never act after a later call (order.py)
    cancelled_by_later: bool = False

    @property
    def nothing_to_do(self) -> bool:
        return self.datasource is None

    @classmethod
    def change(
        cls,
        event: str,
        datasource: DataSource,
        role: Role | None = None,
        state: State | None = None,
        *,
        why: str,
        failure_exit: int = EXIT_FAILED,
        ssh: SshTarget | None = None,
        cancelled_by_later: bool = False,
    ) -> Plan:
        """``datasource`` becomes ``role`` and ``state`` (None: as it is); ``why`` follows its
        name in the report ("db1: it is the primary")."""
        return cls(
            event=event,
            why=f"{datasource.name}: {why}",
            datasource=datasource.name,
            host=datasource.host,
            role=role,
            state=state,
            failure_exit=failure_exit,
            ssh=ssh,
            cancelled_by_later=cancelled_by_later,
        )


@dataclass(frozen=True, kw_only=True)
class Report:
    """The hook's outcome: its exit status and the one line the calling tool keeps."""

    exit_code: int
    line: str
    commands: tuple[CommandOutcome, ...] = ()
    held: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class HookContext:
    """Where a hook runs: the cluster home, this machine's host name, and how to reach the
    other hosts it may act for (``executors``: host -> executor, e.g. a namespace; ``ssh``:
    reach any other host with ssh, these settings first)."""

    cluster_home: Path
    cluster: str
    this_host: str
    rules_dir: Path | None = None
    executors: Mapping[str, Executor] = field(default_factory=dict)
    lock_dir: Path = Path("/run/lock")
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    release_wait: float = 0.0
    ssh: SshTarget | None = None
    timeline: Timeline = field(default_factory=Timeline)  # for the -v log's timing line

    def datasources(self) -> dict[str, DataSource]:
        return load_datasources(self.cluster_home, self.cluster)

    def executor_for(self, host: str, tools: SshTarget | None = None) -> Executor | None:
        """How to run commands on ``host``: its executor, this machine's own when it is this
        host, ssh (with ``tools``' settings where the options leave them out) when enabled,
        None when this machine cannot reach it."""
        if host in self.executors:
            return self.executors[host]
        if host == self.this_host:
            return LocalExecutor()
        if self.ssh is not None:
            return SshExecutor(host, self.ssh.over(tools or SshTarget()))
        return None


def find_datasource(
    datasources: Mapping[str, DataSource], *, names: Sequence[str], what: str
) -> DataSource:
    """The datasource called or hosted at one of ``names`` (a tool's node name, host name or
    address: the first that matches wins); UsageError naming them and the known ones."""
    for name in names:
        if name in datasources:
            return datasources[name]
    for name in names:
        hosted = sorted(ds.name for ds in datasources.values() if ds.host == name)
        if len(hosted) > 1:
            raise UsageError(
                f"{what}: several datasources run on host {name!r} ({', '.join(hosted)}); "
                "name one with --datasource"
            )
        if hosted:
            return datasources[hosted[0]]
    known = ", ".join(f"{ds.name} (host {ds.host})" for ds in datasources.values()) or "none"
    given = " or ".join(repr(name) for name in names if name)
    raise UsageError(f"{what}: no datasource is named or hosted at {given} (known: {known})")


def run_plan(plan: Plan, context: HookContext) -> Report:
    """Carry ``plan`` out under the hook lock; never raises for a command that fails (the
    report says it), only for bad input or the lock (FloatingIPError, nothing changed)."""
    if plan.nothing_to_do:
        return Report(exit_code=EXIT_DONE, line=f"{plan.event}: nothing to do: {plan.why}")
    assert plan.host is not None and plan.datasource is not None
    executor = context.executor_for(plan.host, plan.ssh)
    if executor is None:
        return Report(
            exit_code=plan.failure_exit,
            line=f"{plan.event}: {plan.why}; but host {plan.host!r} cannot be reached from "
            f"{context.this_host!r} (give --ssh, or run the hook there)",
        )
    lock = lock_path(context.lock_dir, context.cluster, plan.host)
    superseded = _registered(plan, lock)
    with HookLock(lock, context.lock_timeout, plan.event):
        context.timeline.mark("locked")
        later = superseded()
        if later is not None:
            report = _superseded_report(plan, later, "before this one got the lock")
        else:
            report = _run_locked(plan, context, plan.host, executor, superseded)
    logger.info("%s: %s", plan.event, context.timeline.line())
    return report


def _registered(plan: Plan, lock: Path) -> Callable[[], Recorded | None]:
    """Register this call if its tool cancels it by making the next (order.py); return what
    tells whether a later call has been made since (always None for other tools)."""
    start = process_start() if plan.cancelled_by_later else None
    if start is None:
        return lambda: None
    order = CallOrder(lock.with_suffix(".order"))
    order.register(start, plan.event)
    return lambda: order.later_than(start)


def _superseded_report(plan: Plan, later: Recorded, when: str) -> Report:
    return Report(
        exit_code=EXIT_DONE,
        line=f"{plan.event}: nothing done: a later call ({later.event}) was made {when} "
        "(this one was cancelled by its caller, which could not kill it)",
    )


def _run_locked(
    plan: Plan,
    context: HookContext,
    host: str,
    executor: Executor,
    superseded: Callable[[], Recorded | None],
) -> Report:
    assert plan.datasource is not None
    roles = {plan.datasource: plan.role} if plan.role is not None else {}
    states = {plan.datasource: plan.state} if plan.state is not None else {}
    # The event's facts are known before the manager reconciles: it learns what is held with
    # them in place, so a VIP that should stay is never dropped and retaken (no flap).
    manager = Manager.from_cluster_home(
        context.cluster_home,
        context.cluster,
        rules_dir=context.rules_dir,
        host=host,
        executor=executor,
        roles=roles,
        states=states,
        reconcile_at_start=not plan.check_only,
        monitor_interval=0,
        retry=RetryPolicy(attempts=0),  # a one-shot does not linger for retries
        failsafe=False,
    )
    context.timeline.mark("manager ready")
    try:
        if plan.check_only:
            outcomes = [manager.run_service(name, "status") for name in sorted(manager.services)]
            return _check_report(plan, outcomes)
        later = _wait_for_release(manager, context.release_wait, superseded)
        if later is not None:  # refused so far: nothing changed
            return _superseded_report(plan, later, "while this one waited for the release")
        events, held, problems = manager.history, dict(manager.held), dict(manager.problems)
        for unread, why in manager.unreachable.items():  # not done: its VIP may still be up
            problems[unread] = f"no answer through {transport_of(executor)} ({why}): may hold it"
    finally:
        context.timeline.commands(manager.history)
        manager.close()
        context.timeline.mark("closed")
    return _change_report(plan, events, held, problems, host)


def _wait_for_release(
    manager: Manager, seconds: float, superseded: Callable[[], Recorded | None]
) -> Recorded | None:
    """While the start is refused because another host still answers for the VIP, try again
    for at most ``seconds``: a tool that calls the new primary's hook without waiting for the
    old one's (Patroni) would otherwise leave the VIP nowhere.  Stops, and returns the later
    call, as soon as the tool has made one (this call is cancelled)."""
    deadline = time.monotonic() + seconds
    while _refused_as_duplicate(manager) and time.monotonic() < deadline:
        later = superseded()
        if later is not None:
            return later
        time.sleep(RELEASE_POLL)
        manager.reconcile()
    return None


def _refused_as_duplicate(manager: Manager) -> bool:
    if not manager.problems:
        return False
    failed = [
        event.outcome
        for event in manager.history
        if event.kind is EventKind.COMMAND and event.outcome is not None and not event.ok
    ]
    return bool(failed) and isinstance(failed[-1].error, DuplicateAddressError)


def _check_report(plan: Plan, outcomes: list[CommandOutcome]) -> Report:
    failed = [o for o in outcomes if not o.ok]
    if failed:
        reasons = "; ".join(f"{o.service} status on {o.host}: {o.error}" for o in failed)
        return Report(exit_code=plan.failure_exit, line=f"{plan.event}: FAILED: {reasons}")
    parts = [f"{o.service} status on {o.host} ok" for o in outcomes] or ["no services"]
    return Report(
        exit_code=EXIT_DONE, line=f"{plan.event}: {plan.why}: {', '.join(parts)}", commands=()
    )


def _change_report(
    plan: Plan,
    events: list[Event],
    held: Mapping[str, str],
    problems: Mapping[str, str],
    host: str,
) -> Report:
    """Done when no service is left with a problem (a start refused and then granted counts
    as done) and no rule failed."""
    commands = tuple(
        event.outcome
        for event in events
        if event.kind is EventKind.COMMAND and event.outcome is not None
    )
    failures = [f"{name}: {problem}" for name, problem in sorted(problems.items())]
    failures += [event.message for event in events if event.kind is EventKind.RULE_ERROR]
    ran = [f"{o.service} {o.action} on {o.host or host} ok" for o in commands if o.ok]
    refused = sum(1 for o in commands if not o.ok)
    if refused and not failures:
        ran.append(f"after {refused} failed attempt{'s' if refused > 1 else ''}")
    elif refused:
        last = next(o for o in reversed(commands) if not o.ok)
        ran.append(f"{last.service} {last.action} on {last.host or host} FAILED")
    holding = ", ".join(sorted(held)) or "nothing"
    summary = f"{plan.why}: {', '.join(ran) or 'nothing ran'}; {host} holds {holding}"
    if failures:
        return Report(
            exit_code=plan.failure_exit,
            line=f"{plan.event}: FAILED: {summary}: {'; '.join(failures)}",
            commands=commands,
            held=held,
        )
    return Report(
        exit_code=EXIT_DONE, line=f"{plan.event}: {summary}", commands=commands, held=held
    )
