"""Running what the rules ask for: the settle loop, each intent under its service's lock, the
STARTING gate, the fence before a start, and the record of every outcome.

A change asserts a fact; the intents its rules record run here once the engine has returned, in
order; a start or stop that succeeds changes the ``service`` fact, which goes back to the rules
until they ask for nothing more (at most MAX_COMMANDS_PER_CHANGE commands: beyond is a rule loop).
The caller holds the manager's lock; the dispatcher holds a service's own lock while it runs one
of its commands, so that close()'s failsafe never overlaps a command of the same service.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping

from floatingip import facts
from floatingip.actions import ActionResult, perform, probe, stop_again
from floatingip.announce import Announcer
from floatingip.cluster import ClusterState
from floatingip.commands import Executor
from floatingip.datasource import DataSource, PolicyMode
from floatingip.decision import Repeats, joined, log_decision
from floatingip.engine import Engine, Firing
from floatingip.errors import EngineError, FloatingIPError
from floatingip.fence import Fence, FenceAnswer, ProbedAnswer, give_back, refused
from floatingip.hosts import Hosts
from floatingip.results import ChangeResult, CommandOutcome, Event, History
from floatingip.ruleset import Intent
from floatingip.service import ServiceDefinition
from floatingip.supervisor import Retries
from floatingip.vocabulary import Action, EventKind, Phase

__all__ = ["MAX_COMMANDS_PER_CHANGE", "Dispatcher"]

logger = logging.getLogger(__name__)

# A change whose consequences keep asking for commands is a rule loop, not a cluster event.
MAX_COMMANDS_PER_CHANGE = 64
_TAKES = (Action.START, Action.RESTART)  # may bring a VIP up: not before RUNNING
_TRACKED = (Action.START, Action.STOP)  # what changes what is held
_RETRIED = (Action.START, Action.STOP, Action.RESTART)


class Dispatcher:
    """Runs the intents of the rules (and of the manager itself) and records their outcomes."""

    busy: str | None  # the change in progress (for close() to say what is wedged)
    running: tuple[str, float] | None  # the command in progress, since when

    def __init__(
        self,
        *,
        state: ClusterState,
        services: Mapping[str, ServiceDefinition],
        executors: Mapping[str, Executor],
        engine: Engine,
        history: History,
        retries: Retries,
        fence: Fence,
        hosts: Hosts,
    ) -> None:
        self.state = state
        self.hosts = hosts  # reachable, unreachable, declared dead (floatingip.hosts)
        self.services = services
        self.executors = executors
        self.engine = engine
        self.history = history
        self.retries = retries
        self.fence = fence
        # STARTING until reconcile has learned what is held: no start runs before, whatever the
        # rules say; the rules are asked again once RUNNING (enter_running).
        self.phase = Phase.STARTING
        self.deferred: set[str] = set()  # services whose start waited for RUNNING
        self.refusals = Repeats()  # a refusal repeated on every tick is logged at DEBUG
        # One per service: its commands never overlap, even when close() runs the failsafe
        # while a wedged change holds the manager's lock.
        self.service_locks = {name: threading.RLock() for name in services}
        self.closed = False
        self.busy = None
        self.running = None
        self.repairs = 0  # drift found and corrected by reconcile
        # failsafe.drop_all bumps the epoch (under drop_lock) before it stops everything; a start
        # that ran meanwhile sees it moved and stops again instead of being marked held.
        self.epoch = 0
        self.drop_lock = threading.Lock()
        self.dropped = ""  # why the last drop_all ran
        self.announcer = Announcer(history)
        self.record = history.record  # type: ignore[method-assign]  # on every change's path

    def record(self, event: Event) -> None:  # replaced by history.record itself in __init__
        self.history.record(event)

    def service_fact(self, name: str) -> facts.Fact:
        return facts.service_fact(name, self.state.holders.get(name))

    # -- changes ----------------------------------------------------------------------------

    def begin(self) -> None:
        """The facts a starting manager asserts: STARTING (rules that take a VIP wait until what
        is really held here is known), the policy, and each service (not held)."""
        self.engine.replace(facts.manager_fact(self.state.host, Phase.STARTING))
        self.engine.replace(facts.policy_fact(self.state.policy))
        for name in self.services:
            self.engine.replace(self.service_fact(name))

    def set_policy(self, new: PolicyMode) -> ChangeResult:
        description = f"policy {self.state.policy} -> {new}"
        self.state.policy = new
        self.record(Event(kind=EventKind.POLICY, message=description))
        return self.change(description, facts.policy_fact(new))

    def apply_datasource(self, new: DataSource, old: DataSource | None) -> ChangeResult:
        """``old`` becomes ``new`` (a datasource added when ``old`` is None)."""
        if old is None:
            description = f"datasource {new.name} added"
        else:
            parts = []  # _value_: Enum.value without its descriptor, on every change
            if new.role is not old.role:
                parts.append(f"role {old.role._value_} -> {new.role._value_}")
            if new.state is not old.state:
                parts.append(f"state {old.state._value_} -> {new.state._value_}")
            changed = ", ".join(parts) or new.state._value_ + " again"
            description = f"datasource {new.name}: {changed}"
        previous, self.busy = self.busy, description
        try:
            fact = facts.datasource_fact(new, old, self.state.hosts)
            firing = self.engine.replace(fact)
            with self.state.lock:
                self.state.datasources[new.name] = new
            self.record(Event(kind=EventKind.DATASOURCE, message=description, datasource=new.name))
            return self.settle(description, firing)
        finally:
            self.busy = previous

    def change(self, description: str, fact: facts.Fact) -> ChangeResult:
        """Assert ``fact`` and run what the rules ask for."""
        previous, self.busy = self.busy, description
        try:
            return self.settle(description, self.engine.replace(fact))
        finally:
            self.busy = previous

    def settle(self, description: str, firing: Firing) -> ChangeResult:
        """Run the intents of ``firing`` and of the service-fact changes they cause, in order."""
        if not firing.intents and not firing.errors:  # most changes: the rules ask for nothing
            return ChangeResult(change=description, rules_fired=tuple(firing.fired))
        everything = Firing()
        everything.extend(firing)
        pending = deque(firing.intents)
        commands: list[CommandOutcome] = []
        engine_errors: list[FloatingIPError] = []
        if firing.errors:
            self.record_rule_errors(firing)
        while pending:
            if len(commands) >= MAX_COMMANDS_PER_CHANGE:
                loop = EngineError(
                    f"{description}: the rules asked for more than {MAX_COMMANDS_PER_CHANGE} "
                    "commands; they loop (a rule undoes what another does)"
                )
                self.record(Event(kind=EventKind.RULE_ERROR, message=str(loop), ok=False))
                engine_errors.append(loop)
                break
            intent = pending.popleft()
            outcome = self._run_intent(intent)
            if outcome is None:
                continue
            commands.append(outcome)
            self._note_outcome(outcome)
            if outcome.ok and intent.action in _TRACKED:  # held changed (_perform)
                follow_up = self.engine.replace(self.service_fact(intent.service))
                everything.extend(follow_up)
                if follow_up.errors:
                    self.record_rule_errors(follow_up)
                pending.extend(follow_up.intents)
        return ChangeResult(
            change=description,
            commands=tuple(commands),
            rule_errors=tuple(everything.errors),
            rules_fired=tuple(everything.fired),
            engine_errors=tuple(engine_errors),
        )

    def record_rule_errors(self, firing: Firing) -> None:
        for rule_error in firing.errors:
            self.record(Event(kind=EventKind.RULE_ERROR, message=str(rule_error), ok=False))

    def enter_running(self) -> None:
        """RUNNING: starts may run; the rules are asked again about the starts that waited."""
        self.phase = Phase.RUNNING
        self.change("manager running", facts.manager_fact(self.state.host, Phase.RUNNING))
        if not self.deferred:
            return
        # A rule that does not wait for RUNNING asked to start something while the manager
        # was starting: ask the rules again, now that what is held is known.
        services, self.deferred = sorted(self.deferred), set()
        again = [f for f in self.engine.facts.values() if f.get(facts.KIND) == facts.DATASOURCE]
        again += [self.service_fact(name) for name in services]
        for fact in again:
            self.change(f"manager running: {fact['id']} again", fact)

    # -- one intent ---------------------------------------------------------------------------

    def _run_intent(self, intent: Intent) -> CommandOutcome | None:
        service = self.services.get(intent.service)
        state = self.state
        if service is None:
            unknown = FloatingIPError(
                f"rule {intent.rule!r} asked to {intent.action} service {intent.service!r}, "
                f"which cluster {state.cluster!r} does not define"
            )
            return self._finish(intent, ActionResult((), None, unknown), state.host)
        if state.policy is PolicyMode.MAINTENANCE:
            self.skip(intent, "the policy is MAINTENANCE")
            return None
        if intent.action in _TAKES and self.phase is Phase.STARTING:
            self.deferred.add(intent.service)
            self.skip(
                intent,
                "the manager is starting: nothing is taken before reconcile has learned what "
                "is held; the rules are asked again once it runs",
            )
            return None
        holder = state.holders.get(intent.service)
        if intent.action == Action.START and holder is not None:
            self.skip(intent, f"already held (for {holder or '-'})")
            return None
        if intent.action == Action.STOP and holder is None:
            self.skip(intent, "not held here")
            return None
        datasource = state.datasources.get(intent.datasource or "")
        host = datasource.host if datasource else state.host
        if host in self.hosts.dead:
            self.skip(intent, f"host {host} is declared dead")
            return None
        return self.execute(service, intent, host, track=True)

    def execute(
        self, service: ServiceDefinition, intent: Intent, host: str, *, track: bool = False
    ) -> CommandOutcome | None:
        """Run ``intent`` unless the manager closed meanwhile (None); ``track``: a start or stop
        that succeeds changes what is held."""
        with self.service_locks[service.name]:
            if self.closed:  # close() ran the failsafe while this change was wedged
                self.skip(intent, "the manager is closed")
                return None
            return self.perform(service, intent, host, track=track)

    def perform(
        self, service: ServiceDefinition, intent: Intent, host: str, *, track: bool
    ) -> CommandOutcome:
        """Run ``intent`` (the caller holds the service's lock): ask the fence before a start,
        tell it after a confirmed stop."""
        executor = self.executors.get(host)
        if executor is None:
            acts_for = ", ".join(sorted(self.state.hosts))
            error = FloatingIPError(
                f"no executor for host {host!r}: this manager acts for {acts_for}"
            )
            return self._finish(intent, ActionResult((), None, error), host)
        self.running = (f"{service.name} {intent.action} on {host}", time.monotonic())
        epoch = self.epoch
        announce = self.announcer.for_action(service, intent.action, executor, host)
        try:
            answer = self._ask_fence(service, intent, host) if _takes(service, intent) else None
            if answer is not None and not answer.granted:
                action = refused(service, intent.action, answer, executor)
            else:
                with self.hosts.acting(service.name, intent.action):
                    action = perform(service, intent.action, executor, announce=announce)
                if action.held is not None:
                    self.hosts.seen(service.name, host)
                if isinstance(answer, ProbedAnswer) and answer.steps:
                    action = action.after(answer.steps)
        finally:
            self.running = None
        granted = answer is not None and answer.granted
        if action.ok and intent.action == Action.STOP:
            if action.held is False:  # the status confirmed it gone: a clean release
                self._let_go(service.name, host, clean=True)
            elif not service.reports_held:  # nothing can confirm it: the next holder checks
                self._let_go(service.name, host, clean=False)
        elif granted and not action.ok:
            # Nothing here is held, so no stop would ever give the grant back, and other hosts
            # would be kept out while this manager lives: give it back if the VIP is not here.
            self._give_back_if_absent(service, executor, host)
        if granted and action.ok:
            # the check and the record under one lock: drop_all moves the epoch under it
            with self.drop_lock:
                dropped = self.epoch != epoch
                if not dropped and track and intent.action in _TRACKED:
                    self.state.hold(intent.service, intent.datasource or "")
            if dropped:  # every VIP was dropped while this start ran: undo it, give back
                announce.cancel(f"every VIP was dropped while this start ran ({self.dropped})")
                action = stop_again(service, executor, action, self.dropped)
                self._give_back_if_absent(service, executor, host)
        elif track and action.ok and intent.action == Action.STOP:
            with self.drop_lock:  # under the service's lock: the failsafe sees what it did
                self.state.hold(intent.service, None)
        outcome = self._finish(intent, action, host, refused=answer is not None and not granted)
        if action.ok and action.announce is not None:
            self.announcer.announce(service, action.announce, executor, host)
        return outcome

    def _ask_fence(self, service: ServiceDefinition, intent: Intent, host: str) -> FenceAnswer:
        blocked = self.hosts.blocks_take(service.name, host)  # a start elsewhere never returned
        if blocked is not None:
            return ProbedAnswer(granted=False, reason=str(blocked), error=blocked)
        try:
            return self.fence.acquire(service.name, host=host, datasource=intent.datasource)
        except Exception as exc:  # a fence must not raise; fail closed if it does
            logger.exception("fence %r failed on %s", self.fence, service.name)
            return FenceAnswer(granted=False, reason=f"the fence failed: {exc!r}")

    def _give_back_if_absent(
        self, service: ServiceDefinition, executor: Executor, host: str
    ) -> None:
        """A grant this host did not use: returned, with no clean release claimed, if the status
        shows the VIP is not here; kept (keeping other hosts out) while it may be."""
        if probe(service, executor) is False:
            self._let_go(service.name, host, clean=False)

    def _let_go(self, service: str, host: str, *, clean: bool) -> None:
        try:
            if clean:
                self.fence.release(service, host=host)
            else:
                give_back(self.fence, service, host=host)
        except Exception as exc:
            message = f"{service}: the fence failed to release it on {host}: {exc!r}"
            logger.exception("%s", message)
            self.record(Event(kind=EventKind.WARNING, message=message, ok=False, service=service))

    def _note_outcome(self, outcome: CommandOutcome) -> None:
        """Retries: a success forgets the service's last failure; a failure is retried."""
        service = outcome.service
        if outcome.action not in _RETRIED:
            return
        if outcome.ok:
            self.retries.succeeded(service)
            return
        problem = f"{outcome.action} on {outcome.host} failed: {outcome.error}"
        if not self.retries.failed(service, problem):
            attempts = self.retries.policy.attempts
            message = f"{service}: giving up after {attempts} retries"
            self.record(Event(kind=EventKind.WARNING, message=message, ok=False, service=service))

    # -- the record ---------------------------------------------------------------------------

    def skip(self, intent: Intent, why: str) -> None:
        message = f"{intent.service} {intent.action} not run ({why}); asked by rule {intent.rule!r}"
        log_decision(logger, intent, result="skipped", datasources=self.state.datasources,
                     cause=self.busy, why=why)  # fmt: skip
        self.record(Event(kind=EventKind.SKIPPED, message=message,
                          datasource=intent.datasource, service=intent.service))  # fmt: skip

    def _finish(
        self, intent: Intent, action: ActionResult, host: str, *, refused: bool = False
    ) -> CommandOutcome:
        outcome = CommandOutcome(
            service=intent.service,
            action=intent.action,
            rule=intent.rule,
            datasource=intent.datasource,
            argv=action.argv,
            result=action.result,
            error=action.error,
            host=host,
            steps=action.steps,
            notes=action.notes,
        )
        ok = outcome.ok
        if ok:
            message = f"{intent.service} {intent.action} on {host}: ran {joined(action.argv)}"
            if action.notes:
                message += f" ({'; '.join(action.notes)})"
        else:
            message = f"{intent.service} {intent.action} on {host} failed: {action.error}"
        again = self.refusals.repeated(intent.service, message if refused else None)
        log_decision(logger, intent, result="ok" if ok else "failed", host=host, action=action,
                     datasources=self.state.datasources, cause=self.busy,
                     repeated=again)  # fmt: skip
        self.record(Event(kind=EventKind.COMMAND, message=message, ok=ok, outcome=outcome,
                          datasource=intent.datasource, service=intent.service))  # fmt: skip
        return outcome


def _takes(service: ServiceDefinition, intent: Intent) -> bool:
    """Whether ``intent`` may bring the VIP up, so that the fence is asked first: a start, and a
    VIP service's restart (it adds the VIP again).  A classic service's command.restart is its
    own command, run as written (the seed's is `echo "Not supported"`)."""
    return intent.action == Action.START or (
        intent.action == Action.RESTART and service.vip is not None
    )
