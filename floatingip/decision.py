"""The one log line per decision: a service action the rules (or the manager) asked for, run or
not, with the facts that caused it, under stable keys (README "Logging"); and the failure reasons
that the log, the metrics and ``floatingip status`` share.

Only changes that ask for a command reach here: a quiet change (the rules ask for nothing)
logs nothing at INFO.
"""

from __future__ import annotations

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

__all__ = ["REASONS", "duration", "failure_reason", "log_decision"]

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
) -> None:
    """Log one decision: INFO, or ERROR when it failed; nothing is built when the level is off."""
    level = logging.ERROR if result == "failed" else logging.INFO
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
        fields["command"] = shlex.join(action.argv) if action.argv else None
        fields["duration"] = round(duration(action.steps, action.result), 4)
        if action.error is not None:
            fields["reason"] = failure_reason(action.error)
            fields["error"] = " ".join(str(action.error).split())
        if action.notes:
            fields["notes"] = "; ".join(action.notes)
    if why:
        fields["why"] = why
    logger.log(level, "%s", format_fields(fields), extra={FIELDS: fields})
