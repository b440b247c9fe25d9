"""Reconcile: compare what the manager believes is held with what is really there, and decide.

:func:`decide` is the decision alone, a pure function of the belief and of what the probes found;
:func:`correct_belief` probes, decides, and applies the decision through a dispatcher.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from floatingip.actions import probe_partly
from floatingip.datasource import PolicyMode
from floatingip.results import ChangeResult, CommandOutcome, Event
from floatingip.ruleset import Intent
from floatingip.vocabulary import Action, EventKind, Phase

if TYPE_CHECKING:
    from floatingip.dispatch import Dispatcher

__all__ = [
    "Decision",
    "correct_belief",
    "decide",
    "monitor",
    "reevaluate",
    "retry",
    "warn_unprobeable",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Decision:
    """What reconcile does about one service.

    ``unreadable``: hosts whose state could not be read; when not empty the belief is left as it
    is.  Otherwise, when what was ``found`` differs from what was ``expected`` (drift), the
    service is believed held for ``holder`` (None: not held) and stopped on ``stop_on``.
    """

    unreadable: tuple[str, ...] = ()
    expected: tuple[str, ...] = ()
    found: tuple[str, ...] = ()
    holder: str | None = None
    stop_on: tuple[str, ...] = ()

    @property
    def drift(self) -> bool:
        return not self.unreadable and self.found != self.expected

    @property
    def message(self) -> str:
        expected = ", ".join(self.expected) or "no host"
        return f"drift: expected on {expected}, found on {', '.join(self.found) or 'nowhere'}"


def decide(
    *,
    believed_host: str | None,
    found: Mapping[str, bool | None],
    owners: Mapping[str, str | None],
) -> Decision:
    """``believed_host``: where the manager believes the service is held (None: nowhere);
    ``found``: each host's probe (None: could not tell); ``owners``: for each host, the datasource
    a VIP found there belongs to (None: no datasource runs there).

    A VIP found where it is believed stays; one found elsewhere is kept where it is (it becomes
    the belief, no flap) on the first host that has one, and released from the others and from
    any host no datasource runs on.
    """
    holding = tuple(sorted(host for host, held in found.items() if held))
    unknown = tuple(sorted(host for host, held in found.items() if held is None))
    if believed_host in unknown or (unknown and not holding):
        return Decision(unreadable=unknown)
    expected = (believed_host,) if believed_host is not None else ()
    if holding == expected:
        return Decision(expected=expected, found=holding)
    keep = believed_host if believed_host in holding else holding[0] if holding else None
    keeper = owners.get(keep) if keep is not None else None
    stop_on = tuple(host for host in holding if host != keep or keeper is None)
    return Decision(expected=expected, found=holding, holder=keeper, stop_on=stop_on)


def correct_belief(dispatcher: Dispatcher, name: str) -> list[CommandOutcome]:
    """Probe every host the dispatcher acts for; make ``held`` match what is really there."""
    service = dispatcher.services[name]
    state = dispatcher.state
    # not on a host declared dead: nothing runs there, and what it held is not held
    probed = {
        host: probe_partly(service, executor)
        for host, executor in dispatcher.executors.items()
        if host in state.hosts
    }
    found = {host: held for host, (held, _) in probed.items()}
    for host, held in found.items():
        if held is not None:
            dispatcher.hosts.seen(name, host)
    believed = state.holders.get(name)
    decision = decide(
        believed_host=state.host_of(believed) if believed is not None else None,
        found=found,
        owners={host: state.local_datasource_on(host) for host in found},
    )
    if decision.unreadable:
        logger.warning(
            "%s: cannot read its state on %s; left as it is", name, ", ".join(decision.unreadable)
        )
        return []
    kept = [host for host in decision.found if host not in decision.stop_on]
    partly = [host for host in kept if probed[host][1]]
    if not decision.drift:
        return _complete(dispatcher, name, partly)
    dispatcher.repairs += 1
    message = f"{name}: {decision.message}"
    if dispatcher.phase is Phase.STARTING and believed is None and not decision.stop_on:
        # A manager starting (a one-shot hook every time) believes nothing yet: a VIP found on
        # one host that a datasource runs on is what it comes to learn, not a fault.
        logger.info("%s: found on %s at start; taken as held", name, ", ".join(decision.found))
    else:
        logger.warning("%s; repairing", message)
    dispatcher.record(Event(kind=EventKind.DRIFT, message=message, ok=False, service=name))
    state.hold(name, decision.holder)
    outcomes = []
    if state.policy is not PolicyMode.MAINTENANCE:
        for host in decision.stop_on:
            intent = Intent(name, Action.STOP, "reconcile")
            outcome = dispatcher.execute(service, intent, host)
            if outcome is not None:
                outcomes.append(outcome)
    return outcomes + _complete(dispatcher, name, partly)


def _complete(dispatcher: Dispatcher, name: str, hosts: list[str]) -> list[CommandOutcome]:
    """A VIP kept on ``hosts`` that is there only in part (one address of two is gone): start
    it again there, which adds what is missing (a start of what is present changes nothing)."""
    outcomes = []
    for host in hosts:
        dispatcher.repairs += 1
        message = f"{name}: drift: its VIP is on {host} only in part; completing it"
        logger.warning("%s", message)
        dispatcher.record(Event(kind=EventKind.DRIFT, message=message, ok=False, service=name))
        if dispatcher.state.policy is PolicyMode.MAINTENANCE:
            continue
        holder = dispatcher.state.holders.get(name)
        intent = Intent(name, Action.START, "reconcile", datasource=holder)
        outcome = dispatcher.execute(dispatcher.services[name], intent, host)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def warn_unprobeable(dispatcher: Dispatcher) -> None:
    """Say which services reconcile and the monitor leave alone: their state cannot be read."""
    for name, service in dispatcher.services.items():
        if not service.reports_held:
            message = (
                f"reconcile is off for service {name!r}: it needs command.status and a VIP "
                "address (vip.address, or the one IPv4 address in command.start)"
            )
            logger.warning("%s", message)
            dispatcher.record(
                Event(kind=EventKind.WARNING, message=message, ok=False, service=name)
            )


def reevaluate(
    dispatcher: Dispatcher, names: Iterable[str], description: str, *, probe: bool = True
) -> ChangeResult:
    """Reconcile ``names`` (those whose state can be read; not with ``probe=False``) and ask
    the rules about each."""
    previous, dispatcher.busy = dispatcher.busy, description
    try:
        results = []
        commands: list[CommandOutcome] = []
        for name in names:
            if probe and dispatcher.services[name].reports_held:
                commands += correct_belief(dispatcher, name)
            firing = dispatcher.engine.replace(dispatcher.service_fact(name))
            result = dispatcher.settle(f"{description}: {name}", firing)
            commands += result.commands
            results.append(result)
        return ChangeResult(
            change=description,
            commands=tuple(commands),
            rule_errors=tuple(e for result in results for e in result.rule_errors),
            rules_fired=tuple(r for result in results for r in result.rules_fired),
            engine_errors=tuple(e for result in results for e in result.engine_errors),
        )
    finally:
        dispatcher.busy = previous


def retry(dispatcher: Dispatcher, lock: threading.RLock, service: str) -> None:
    """The supervisor's: a retry of a failed action of ``service`` is due (``lock``: the
    manager's); reconcile it and ask the rules again."""
    with lock:
        if dispatcher.closed:
            return
        attempt = dispatcher.retries.attempt(service)
        message = f"{service}: retry {attempt}"
        dispatcher.record(Event(kind=EventKind.RETRY, message=message, service=service))
        reevaluate(dispatcher, [service], f"retry {attempt} of {service}")


def monitor(dispatcher: Dispatcher, lock: threading.RLock) -> None:
    """The supervisor's, every monitor interval: reconcile every service."""
    with lock:
        if not dispatcher.closed:
            reevaluate(dispatcher, sorted(dispatcher.services), "monitor")
