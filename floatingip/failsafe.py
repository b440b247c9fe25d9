"""The Manager's own stops, without the rules: closing (the failsafe, Tungsten's
``manager.vip.isFailSafe``), a revocation by the fence, and the emergency drop of everything
(a fence that lost its lease: no lock may be waited for).

Closing asks the rules first (the manager fact goes STOPPING), then stops whatever they left held.
It runs in a worker thread, so that a consequence or a command that never returns cannot wedge
the failsafe too: past the timeout, the manager says why and stops what this host holds itself,
each service after the command of it that may still be running.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

from floatingip import facts
from floatingip.actions import perform, probe
from floatingip.datasource import PolicyMode
from floatingip.dispatch import Dispatcher
from floatingip.errors import EngineError
from floatingip.results import ChangeResult, CommandOutcome, Event
from floatingip.ruleset import Intent
from floatingip.supervisor import Supervisor
from floatingip.vocabulary import Action, EventKind, Phase

__all__ = ["CLOSE_GRACE", "DEFAULT_CLOSE_TIMEOUT", "close", "drop_all", "failsafe_stop", "revoke"]

logger = logging.getLogger(__name__)

# close() waits this long for the rules (and a change in progress) before running the failsafe
# itself; and a command this long past its own timeout is taken as wedged.
DEFAULT_CLOSE_TIMEOUT = 30.0
CLOSE_GRACE = 10.0


def close(
    dispatcher: Dispatcher,
    lock: threading.RLock,
    supervisor: Supervisor,
    wait: float,
    *,
    release: bool = True,
) -> ChangeResult:
    """Close: the rules release what is held, then the manager whatever they kept (unless in
    MAINTENANCE); past ``wait`` seconds without the rules.  ``lock``: the manager's.  Without
    ``release`` (the Manager's ``failsafe=False``) nothing is stopped: what is held stays."""
    done: list[ChangeResult | BaseException] = []

    def close_with_rules() -> None:
        try:
            if release:
                done.append(_close_with_rules(dispatcher, lock, supervisor))
            else:
                done.append(_close_keeping(dispatcher, lock, supervisor))
        except BaseException as exc:  # re-raised in the caller's thread
            done.append(exc)

    # A worker, so that a wedged engine call or lock holder cannot wedge the failsafe too.
    worker = threading.Thread(
        target=close_with_rules, name=f"floatingip-close-{dispatcher.state.cluster}", daemon=True
    )
    worker.start()
    worker.join(wait)
    result = None if done else _close_without_rules(dispatcher, supervisor, wait, release)
    if result is None:  # the rules finished after all
        worker.join()
        outcome = done[0]
        if isinstance(outcome, BaseException):
            raise outcome
        result = outcome
    dispatcher.announcer.wait(timeout=30)
    with dispatcher.state.lock:
        still_held = ", ".join(dispatcher.state.holders) or "nothing"
    message = f"manager closed; holding {still_held}"
    if not release:
        message = f"manager closed without its failsafe; keeping {still_held}"
    dispatcher.record(Event(kind=EventKind.MANAGER, message=message))
    return result


def _close_keeping(
    dispatcher: Dispatcher, lock: threading.RLock, supervisor: Supervisor
) -> ChangeResult:
    """Close without the failsafe: no STOPPING fact (the rules' failsafe would fire), no stop."""
    with lock:
        if dispatcher.closed:
            dispatcher.engine.close()
            return ChangeResult(change="manager closed")
        supervisor.stop(timeout=0)
        with dispatcher.state.lock:
            dispatcher.closed = True
        dispatcher.engine.close()
        return ChangeResult(change="manager closed without its failsafe")


def _close_with_rules(
    dispatcher: Dispatcher, lock: threading.RLock, supervisor: Supervisor
) -> ChangeResult:
    with lock:
        if dispatcher.closed:  # closed without the rules while this waited: free the engine
            dispatcher.engine.close()
            return ChangeResult(change="manager closed")
        supervisor.stop(timeout=0)
        try:
            stopping = facts.manager_fact(dispatcher.state.host, Phase.STOPPING)
            result = dispatcher.change("manager stopping", stopping)
            return _release_what_the_rules_kept(dispatcher, result)
        finally:
            with dispatcher.state.lock:
                dispatcher.closed = True
            dispatcher.engine.close()


def _release_what_the_rules_kept(dispatcher: Dispatcher, result: ChangeResult) -> ChangeResult:
    """Failsafe on close is the Manager's promise, not a rule author's: stop whatever the
    rules left held (a rule file without a failsafe rule, or one that failed)."""
    if dispatcher.state.policy is PolicyMode.MAINTENANCE:
        return result
    with dispatcher.state.lock:
        kept = sorted(dispatcher.state.holders)
    commands = list(result.commands)
    for name in kept:
        message = f"closing: the rules did not release {name}; the manager's failsafe stops it"
        logger.warning("%s", message)
        dispatcher.record(Event(kind=EventKind.WARNING, message=message, ok=False, service=name))
        outcome = failsafe_stop(dispatcher, name)
        if outcome is not None:
            commands.append(outcome)
    return replace(result, commands=tuple(commands)) if kept else result


def _close_without_rules(
    dispatcher: Dispatcher, supervisor: Supervisor, waited: float, release: bool = True
) -> ChangeResult | None:
    """The failsafe when the rules cannot run: stop what is held, each service after the
    command it may be running.  None if the manager closed normally meanwhile."""
    with dispatcher.state.lock:
        if dispatcher.closed:
            return None
        dispatcher.closed = True  # from now on nothing is started or stopped but by the failsafe
    supervisor.stop(timeout=0)
    now = time.monotonic()
    busy, running = dispatcher.busy, dispatcher.running
    what = f"the change {busy!r}" if busy is not None else "a change"
    if running is not None:
        what += f", running {running[0]} (for {now - running[1]:.1f} s)"
    policy = dispatcher.state.policy
    stops = release and policy is not PolicyMode.MAINTENANCE
    releases = "what this host holds, without the rules" if stops else (
        "nothing (its failsafe is off)" if not release else "nothing (policy MAINTENANCE)"
    )  # fmt: skip
    message = (
        f"closing: {what} has not returned after {waited:g} s (a rule's consequence or a "
        f"command is wedged); the manager releases {releases}"
    )
    logger.error("%s", message)
    dispatcher.record(Event(kind=EventKind.MANAGER, message=message, ok=False))
    commands = []
    if stops:
        for name in sorted(dispatcher.services):
            outcome = failsafe_stop(dispatcher, name)
            if outcome is not None:
                commands.append(outcome)
    # close_with_rules, still waiting, frees the engine if the wedged call ever returns
    return ChangeResult(
        change="manager stopping", commands=tuple(commands), engine_errors=(EngineError(message),)
    )


def failsafe_stop(
    dispatcher: Dispatcher, name: str, rule: str = "failsafe (without the rules)"
) -> CommandOutcome | None:
    """Stop service ``name`` where it is held (None if it is not), after any command of it
    still running; ``rule`` says why in the outcome."""
    service = dispatcher.services[name]
    lock = dispatcher.service_locks[name]
    # after a command of this service that is running, which has its own timeout
    acquired = lock.acquire(timeout=service.timeout + CLOSE_GRACE)
    if not acquired:
        message = (
            f"{name}: a command has not returned {service.timeout + CLOSE_GRACE:g} s past "
            "its timeout; running the failsafe stop anyway"
        )
        logger.error("%s", message)
        dispatcher.record(Event(kind=EventKind.WARNING, message=message, ok=False, service=name))
    try:
        with dispatcher.state.lock:
            holder = dispatcher.state.holders.get(name)
        if holder is None:
            return None
        host = dispatcher.state.host_of(holder) if holder else dispatcher.state.host
        intent = Intent(name, Action.STOP, rule, holder or None)
        return dispatcher.perform(service, intent, host, track=True)
    finally:
        if acquired:
            lock.release()


def revoke(dispatcher: Dispatcher, name: str, reason: str) -> ChangeResult:
    """The fence says this host lost the right to hold ``name``: stop it now, without the
    rules, and say why; the rules are asked again on the next change or reconcile."""
    state = dispatcher.state
    message = f"{name}: revoked ({reason}); stopping it without the rules"
    logger.warning("%s", message)
    dispatcher.record(Event(kind=EventKind.WARNING, message=message, ok=False, service=name))
    outcome = failsafe_stop(dispatcher, name, f"revoked: {reason}")
    dispatcher.retries.note(name, f"revoked on {state.host}: {reason}")
    # The rules learn that it is no longer held, but are not acted on now: they would take it
    # straight back, and the fence has just said this host may not.
    firing = dispatcher.engine.replace(dispatcher.service_fact(name))
    dispatcher.record_rule_errors(firing)
    for intent in firing.intents:
        dispatcher.skip(intent, "revoked: the rules are asked again on the next change")
    return ChangeResult(
        change=f"{name} revoked: {reason}",
        commands=(outcome,) if outcome is not None else (),
        rule_errors=tuple(firing.errors),
        rules_fired=tuple(firing.fired),
    )


def drop_all(dispatcher: Dispatcher, reason: str) -> ChangeResult:
    """Stop every service on this manager's host now, without the manager's lock or any
    service's lock (a change in progress may hold them past a lease's end), and mark each not
    held.  The epoch moves first: a start already past its fence finds it moved when it
    returns, stops again and is not marked held (Dispatcher.perform).  The fence is not told:
    a drop is not a confirmed release; the rules are asked again on the next change or reconcile.
    """
    state = dispatcher.state
    with dispatcher.drop_lock:
        dispatcher.epoch += 1
        dispatcher.dropped = reason
    message = f"dropping every VIP of host {state.host} now, without waiting for a change: {reason}"
    logger.error("%s", message)
    dispatcher.record(Event(kind=EventKind.WARNING, message=message, ok=False))
    executor = dispatcher.executors[state.host]
    commands = []
    for name, service in sorted(dispatcher.services.items()):
        holder = state.holders.get(name)
        if holder is not None and state.host_of(holder) != state.host:
            continue  # held on another host this manager acts for: not this host's to drop
        dispatcher.announcer.stop(name, state.host, f"dropped: {reason}")
        if probe(service, executor) is False:  # not here (belief is not trusted for this)
            state.hold(name, None)
            continue
        stop = perform(service, Action.STOP, executor)
        state.hold(name, None)
        intent = Intent(name, Action.STOP, f"dropped: {reason}")
        commands.append(dispatcher._finish(intent, stop, state.host))
        dispatcher.retries.note(name, f"dropped on {state.host}: {reason}")
    return ChangeResult(change=f"every VIP dropped: {reason}", commands=tuple(commands))
