"""What the Manager returns and records: outcomes of service actions, of changes and of switches,
and the events of its history (which listeners also receive)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from floatingip.commands import CommandResult
from floatingip.engine import RuleFailure
from floatingip.errors import FloatingIPError, UsageError
from floatingip.vocabulary import Action, EventKind

__all__ = ["ChangeResult", "CommandOutcome", "Event", "History", "Listener", "SwitchResult"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class CommandOutcome:
    """A service action that ran (or could not run) because a rule (or a caller) asked for it.

    ``argv`` and ``result`` are its main command's; ``steps`` every command it ran (a probe,
    the verification...); ``error`` why it failed; ``notes`` what it found ("already present").
    """

    service: str
    action: Action | str
    rule: str
    datasource: str | None
    argv: tuple[str, ...]
    result: CommandResult | None
    error: FloatingIPError | None = None
    host: str = ""
    steps: tuple[CommandResult, ...] = ()
    notes: tuple[str, ...] = ()

    # Written out, as Event's (see there): one per command, on the path of a change that runs one
    def __init__(
        self,
        *,
        service: str,
        action: Action | str,
        rule: str,
        datasource: str | None,
        argv: tuple[str, ...],
        result: CommandResult | None,
        error: FloatingIPError | None = None,
        host: str = "",
        steps: tuple[CommandResult, ...] = (),
        notes: tuple[str, ...] = (),
    ) -> None:
        self.__dict__.update(
            service=service, action=action, rule=rule, datasource=datasource, argv=argv,
            result=result, error=error, host=host, steps=steps, notes=notes,
        )  # fmt: skip

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None and self.result.ok


@dataclass(frozen=True, kw_only=True)
class ChangeResult:
    """What one change did: the commands it ran and the rule errors it met."""

    change: str
    commands: tuple[CommandOutcome, ...] = ()
    rule_errors: tuple[RuleFailure, ...] = ()
    rules_fired: tuple[str, ...] = ()
    engine_errors: tuple[FloatingIPError, ...] = ()

    # Written out, as Event's (see there): one per change, quiet ones included
    def __init__(
        self,
        *,
        change: str,
        commands: tuple[CommandOutcome, ...] = (),
        rule_errors: tuple[RuleFailure, ...] = (),
        rules_fired: tuple[str, ...] = (),
        engine_errors: tuple[FloatingIPError, ...] = (),
    ) -> None:
        self.__dict__.update(
            change=change, commands=commands, rule_errors=rule_errors, rules_fired=rules_fired,
            engine_errors=engine_errors,
        )  # fmt: skip

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


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
class Event:
    """One entry of the history, as listeners receive it."""

    kind: EventKind
    message: str
    ok: bool = True
    datasource: str | None = None
    service: str | None = None
    outcome: CommandOutcome | None = None
    time: float = field(default_factory=time.time)

    # Written out, and kept by @dataclass: a frozen dataclass's own __init__ sets each field
    # through object.__setattr__, which takes twice as long, and every change records events
    # (tests/test_results.py holds the two to the same fields and defaults).
    def __init__(
        self,
        *,
        kind: EventKind,
        message: str,
        ok: bool = True,
        datasource: str | None = None,
        service: str | None = None,
        outcome: CommandOutcome | None = None,
        time: float | None = None,  # None: now
    ) -> None:
        self.__dict__.update(
            kind=kind, message=message, ok=ok, datasource=datasource, service=service,
            outcome=outcome, time=_now() if time is None else time,
        )  # fmt: skip


_now = time.time


Listener = Callable[[Event], None]


class History:
    """The bounded history of events, and the listeners that receive each as it is recorded.

    Its own lock: gratuitous ARP threads record too, while a change may hold the manager's.
    """

    def __init__(self, size: int) -> None:
        self._events: deque[Event] = deque(maxlen=size)
        # a tuple, replaced on each change: record() takes it as is, without copying under the lock
        self._listeners: tuple[Listener, ...] = ()
        self.lock = threading.RLock()

    def record(self, event: Event) -> None:
        with self.lock:
            self._events.append(event)
            listeners = self._listeners
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("listener %r failed on %s", listener, event.message)

    @property
    def events(self) -> list[Event]:
        with self.lock:
            return list(self._events)

    def add_listener(self, listener: Listener) -> None:
        with self.lock:
            self._listeners += (listener,)

    def remove_listener(self, listener: Listener) -> None:
        with self.lock:
            if listener not in self._listeners:
                raise UsageError(f"listener {listener!r:.60} is not registered")
            listeners = list(self._listeners)
            listeners.remove(listener)
            self._listeners = tuple(listeners)
