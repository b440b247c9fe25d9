"""The words floatingip's parts share: service actions, event kinds, the manager's phases, and
the ``vip.backend`` and ``vip.sudo`` values.

Each is a ``str`` enum: a member equals its text (``Action.START == "start"``), hashes like it and
prints as it, so rule files, service files and callers that use the plain strings keep working.
"""

from __future__ import annotations

import enum

__all__ = ["Action", "Backend", "EventKind", "Phase", "SudoMode", "Word"]


class Word(str, enum.Enum):
    """A ``str`` enum that prints (and formats) as its value, on every Python from 3.10."""

    # A member's text is its value: str's own methods print it, in C (f-strings on every change).
    __str__ = str.__str__
    __format__ = str.__format__  # type: ignore[assignment]  # same signature, named "spec"


class Action(Word):
    """What a service definition can be asked to do (``command.<action>``)."""

    START = "start"
    STOP = "stop"
    RESTART = "restart"
    STATUS = "status"


class EventKind(Word):
    """What an :class:`~floatingip.results.Event` of the history is about."""

    DATASOURCE = "datasource"  # a datasource was added or changed
    POLICY = "policy"  # the policy mode changed
    COMMAND = "command"  # a service action ran (or could not run): see Event.outcome
    SKIPPED = "skipped"  # a rule asked for an action the manager did not run, and why
    ANNOUNCE = "announce"  # gratuitous ARP was sent for a VIP
    WARNING = "warning"  # something an operator should look at; the manager goes on
    DRIFT = "drift"  # what is held differs from what the manager believed: repaired
    RETRY = "retry"  # a failed action is retried
    RULE_ERROR = "rule-error"  # a consequence raised, or the rules loop
    MANAGER = "manager"  # the manager closed (or gave up waiting for a wedged change)


class Phase(Word):
    """The manager's phase, as the ``manager`` fact's ``state``."""

    STARTING = "STARTING"  # reconciling at start: nothing is taken yet
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"  # closing: the failsafe rules release what is held


class Backend(Word):
    """``vip.backend``: the program that adds and removes the address."""

    IP = "ip"
    IFCONFIG = "ifconfig"


class SudoMode(Word):
    """``vip.sudo``: whether privileged commands go through ``sudo -n``."""

    AUTO = "auto"  # unless root, or capability mode (floatingip.privilege)
    TRUE = "true"
    FALSE = "false"
