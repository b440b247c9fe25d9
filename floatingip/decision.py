"""The one log line per decision: a service action the rules (or the manager) asked for, run or
not, with the facts that caused it, under stable keys (README "Logging"); and the failure reasons
that the log, the metrics and ``floatingip status`` share.

Only changes that ask for a command reach here: a quiet change (the rules ask for nothing)
logs nothing at INFO.
"""

from __future__ import annotations

import functools
import logging
import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING

from floatingip.commands import CommandResult
from floatingip.datasource import DataSource
from floatingip.errors import (
    CommandError,
    CommandNotFoundError,
    CommandStartError,
    CommandTimeout,
    DuplicateAddressError,
    FloatingIPError,
    VerificationError,
)
from floatingip.logformat import FIELDS, format_fields

if TYPE_CHECKING:
    from floatingip.actions import ActionResult
    from floatingip.ruleset import Intent

__all__ = ["REASONS", "Repeats", "duration", "failure_reason", "joined", "log_decision"]

# Every value failure_reason returns (the metrics' ``reason`` label).
REASONS = (
    "timeout",
    "not-found",
    "cannot-start",
    "exit-status",
    "verification",
    "duplicate-address",
    "refused",
    "error",
)


def failure_reason(error: FloatingIPError | None) -> str:
    """A short, stable word for why an action failed."""
    if isinstance(error, CommandTimeout):
        return "timeout"
    if isinstance(error, CommandNotFoundError):
        return "not-found"
    if isinstance(error, CommandStartError):
        return "cannot-start"
    if isinstance(error, CommandError):
        return "exit-status"
    if isinstance(error, VerificationError):
        return "verification"
    if isinstance(error, DuplicateAddressError):
        return "duplicate-address"
    if error is not None and str(error).startswith("the fence"):
        return "refused"
    return "error"


def duration(steps: tuple[CommandResult, ...], result: CommandResult | None) -> float:
    """Seconds the action's commands ran, all of them (a probe, the command, its check)."""
    if steps:
        return sum(step.duration for step in steps)
    return result.duration if result is not None else 0.0


@functools.lru_cache(maxsize=256)
def joined(argv: tuple[str, ...]) -> str:
    """``argv`` as a shell line, for messages: a service runs the same few argvs on every change,
    and quoting each word again costs more than the rest of the message."""
    return shlex.join(argv)


def log_decision(
    logger: logging.Logger,
    intent: Intent,
    *,
    result: str,  # ok, failed or skipped
    datasources: Mapping[str, DataSource],
    cause: str | None,
    host: str = "",  # default: the datasource's
    action: ActionResult | None = None,
    why: str = "",
    repeated: bool = False,
) -> None:
    """Log one decision: INFO, or ERROR when it failed (DEBUG when ``repeated``: see
    :class:`Repeats`); nothing is built when the level is off."""
    level = logging.ERROR if result == "failed" else logging.INFO
    if repeated:
        level = logging.DEBUG
    if not logger.isEnabledFor(level):
        return
    datasource = datasources.get(intent.datasource or "")
    fields: dict[str, object] = {
        "event": "decision",
        "service": intent.service,
        "action": str(intent.action),
        "result": result,
        "rule": intent.rule,
        "datasource": intent.datasource,
        "role": str(datasource.role) if datasource is not None else None,
        "state": str(datasource.state) if datasource is not None else None,
        "host": host or (datasource.host if datasource is not None else None),
        "cause": cause,
    }
    if action is not None:
        fields["command"] = joined(action.argv) if action.argv else None
        fields["duration"] = round(duration(action.steps, action.result), 4)
        if action.error is not None:
            fields["reason"] = failure_reason(action.error)
            fields["error"] = " ".join(str(action.error).split())
        if action.notes:
            fields["notes"] = "; ".join(action.notes)
    if why:
        fields["why"] = why
    logger.log(level, "%s", format_fields(fields), extra={FIELDS: fields})


class Repeats:
    """The refusal last logged per service.  An agent without a lease is refused its start on
    every monitor tick: the first refusal, and each that differs from the one before, is an
    ERROR; the same one again is DEBUG, until the service does anything else.  Every one is
    still recorded (history, ``problems``, metrics, status)."""

    def __init__(self) -> None:
        self._last: dict[str, str] = {}  # service -> its refusal; a service's calls never overlap

    def repeated(self, service: str, refusal: str | None) -> bool:
        """Whether ``refusal`` (None: this outcome was not one) repeats the service's last."""
        if refusal is None:
            self._last.pop(service, None)
            return False
        repeated = self._last.get(service) == refusal
        self._last[service] = refusal
        return repeated
