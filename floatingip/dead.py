"""Declaring a host dead, and alive again: how one manager moves a VIP away from a host it
cannot reach, safely.

An unreachable host may still hold its VIP (a broken link to it is not a dead host), so the
manager never takes the VIP elsewhere merely because a host does not answer.  The operator or
the cluster manager fences the host first (powers it off, STONITH, as Pacemaker confirms a
fencing or Tungsten's operator a failover), then declares it dead: the manager takes what that
host held as not held, its datasources as on a host it does not act for (the rules' ``local``
is false, and the next holder runs the duplicate address check first, a second line), and runs
nothing there any more.  Declared alive, the host is probed before anything else: a VIP still
on it is removed, and if that cannot be done (it is still unreachable, the stop fails) it stays
dead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from floatingip import facts
from floatingip.actions import perform, probe
from floatingip.commands import CommandResult
from floatingip.dispatch import Dispatcher
from floatingip.fence import give_back
from floatingip.hosts import GuardedExecutor, Hosts
from floatingip.reconcile import reevaluate
from floatingip.results import ChangeResult, CommandOutcome, Event
from floatingip.ruleset import Intent
from floatingip.vocabulary import Action, EventKind

__all__ = ["declare_alive", "declare_dead"]

logger = logging.getLogger(__name__)


def declare_dead(dispatcher: Dispatcher, hosts: Hosts, host: str, reason: str) -> ChangeResult:
    """``host`` is fenced: what it held is not held, nothing runs there, the rules act."""
    state = dispatcher.state
    hosts.declare_dead(host, reason)
    released = []
    for name in sorted(dispatcher.services):
        # it may not be dead to the clients: what it still announces would pull them back
        dispatcher.announcer.stop(name, host, f"host {host} declared dead ({reason})")
        with dispatcher.service_locks[name], state.lock:
            holder = state.holders.get(name)
            if holder is None or state.host_of(holder) != host:
                continue
            state.holders.pop(name)
        released.append(name)
        give_back(dispatcher.fence, name, host=host)  # nothing confirmed: the next one checks
    _acting_for(dispatcher, hosts)
    held = f"; {', '.join(released)} no longer held there" if released else ""
    message = (
        f"host {host} declared dead ({reason}){held}; nothing runs there until it is declared alive"
    )
    logger.warning("%s", message)
    dispatcher.record(Event(kind=EventKind.WARNING, message=message, ok=False))
    return _rules_again(dispatcher, host, f"host {host} declared dead")


def declare_alive(dispatcher: Dispatcher, hosts: Hosts, host: str) -> ChangeResult:
    """``host`` is back: every VIP still on it is removed first; then it is acted for again.
    If a VIP there cannot be confirmed gone, it stays dead (the result says why)."""
    executor = dispatcher.executors[host]
    anyway = _Anyway(executor) if isinstance(executor, GuardedExecutor) else executor
    commands: list[CommandOutcome] = []
    for name, service in sorted(dispatcher.services.items()):
        with dispatcher.service_locks[name], hosts.acting(name, Action.STOP):
            dispatcher.announcer.stop(name, host, f"host {host} declared alive: its VIP goes")
            if probe(service, anyway) is False:
                hosts.seen(name, host)
                continue
            stop = perform(service, Action.STOP, anyway)
        intent = Intent(name, Action.STOP, f"host {host} declared alive: its VIP goes first")
        commands.append(dispatcher._finish(intent, stop, host))
    failed = [outcome for outcome in commands if not outcome.ok]
    if failed:
        message = f"host {host} stays dead: its VIPs could not be confirmed gone"
        logger.error("%s", message)
        dispatcher.record(Event(kind=EventKind.WARNING, message=message, ok=False))
        return ChangeResult(change=f"host {host} declared alive: refused", commands=tuple(commands))
    hosts.declare_alive(host)
    _acting_for(dispatcher, hosts)
    message = f"host {host} declared alive: nothing of this cluster left on it; acting for it again"
    logger.warning("%s", message)
    dispatcher.record(Event(kind=EventKind.WARNING, message=message, ok=True))
    result = _rules_again(dispatcher, host, f"host {host} declared alive")
    return ChangeResult(
        change=result.change,
        commands=(*commands, *result.commands),
        rule_errors=result.rule_errors,
        rules_fired=result.rules_fired,
        engine_errors=result.engine_errors,
    )


def _acting_for(dispatcher: Dispatcher, hosts: Hosts) -> None:
    state = dispatcher.state
    with state.lock:
        state.hosts = state.all_hosts - hosts.dead.keys()


def _rules_again(dispatcher: Dispatcher, host: str, description: str) -> ChangeResult:
    """The rules learn that ``host``'s datasources are (or are not) local, then reconcile."""
    state = dispatcher.state
    results = []
    with state.lock:
        on_host = sorted((n, ds) for n, ds in state.datasources.items() if ds.host == host)
    for name, datasource in on_host:
        fact = facts.datasource_fact(datasource, datasource, state.hosts)
        results.append(dispatcher.change(f"{description}: datasource {name}", fact))
    results.append(reevaluate(dispatcher, sorted(dispatcher.services), description))
    return ChangeResult(
        change=description,
        commands=tuple(c for r in results for c in r.commands),
        rule_errors=tuple(e for r in results for e in r.rule_errors),
        rules_fired=tuple(f for r in results for f in r.rules_fired),
        engine_errors=tuple(e for r in results for e in r.engine_errors),
    )


class _Anyway:
    """A guarded executor that runs on its host even though it is declared dead."""

    def __init__(self, guarded: GuardedExecutor) -> None:
        self._guarded = guarded

    def run(
        self, argv: Sequence[str], *, timeout: float = 10.0, check: bool = True
    ) -> CommandResult:
        return self._guarded.run_anyway(argv, timeout=timeout, check=check)
