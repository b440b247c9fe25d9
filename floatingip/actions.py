"""Performing a service action with an executor: one command for a classic service, the whole
add-verify-announce procedure for a built-in VIP service.

Nothing here raises for what a command does: every outcome, failure included, comes back as an
:class:`ActionResult`.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass, field

from floatingip.commands import CommandResult, Executor
from floatingip.errors import CommandError, FloatingIPError
from floatingip.service import ServiceDefinition
from floatingip.vip import VipSpec

__all__ = ["ActionResult", "perform"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActionResult:
    """What an action did: its main argv and result, every command it ran, and notes.

    ``held`` is whether the VIP is present afterwards (VIP services; None when unknown).
    ``announce`` is the gratuitous ARP argv to send now that the VIP is up, if any.
    """

    argv: tuple[str, ...]
    result: CommandResult | None
    error: FloatingIPError | None = None
    steps: tuple[CommandResult, ...] = ()
    notes: tuple[str, ...] = ()
    held: bool | None = None
    announce: tuple[str, ...] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None and self.result.ok


@dataclass
class _Run:
    """The commands of one action so far."""

    executor: Executor
    timeout: float
    steps: list[CommandResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def run(self, argv: tuple[str, ...]) -> CommandResult:
        result = self.executor.run(argv, timeout=self.timeout, check=False)
        self.steps.append(result)
        return result

    def done(
        self,
        argv: tuple[str, ...],
        result: CommandResult | None,
        error: FloatingIPError | None = None,
        *,
        held: bool | None = None,
        announce: tuple[str, ...] | None = None,
    ) -> ActionResult:
        return ActionResult(
            argv, result, error, tuple(self.steps), tuple(self.notes), held, announce
        )


def _failure(result: CommandResult) -> FloatingIPError:
    try:
        result.check()
    except FloatingIPError as exc:
        return exc
    return FloatingIPError(f"command failed: {shlex.join(result.argv)}")


def perform(service: ServiceDefinition, action: str, executor: Executor) -> ActionResult:
    """Run ``action`` of ``service`` through ``executor``; never raises for the commands."""
    run = _Run(executor, service.timeout)
    try:
        if service.vip is None:
            argv = service.argv(action)
            result = run.run(argv)
            return run.done(argv, result, None if result.ok else _failure(result))
        return _perform_vip(service.vip, action, run)
    except KeyError as exc:
        return run.done((), None, FloatingIPError(str(exc.args[0])))
    except FloatingIPError as exc:  # a program that does not exist
        argv = exc.argv if isinstance(exc, CommandError) else ()
        return run.done(argv, None, exc)
    except Exception as exc:  # an executor bug must not take the manager down
        logger.exception("executor failed on %s %s", service.name, action)
        return run.done((), None, FloatingIPError(f"executor failed: {exc!r}"))


def _present(vip: VipSpec, run: _Run) -> tuple[bool | None, CommandResult]:
    """Whether the VIP is on its interface; None if the interface cannot be read."""
    result = run.run(vip.show_argv())
    if not result.ok:
        return None, result
    return vip.held_in(result.stdout), result


def _no_interface(vip: VipSpec, result: CommandResult) -> FloatingIPError:
    detail = (result.stderr.strip() or result.stdout.strip()).splitlines()
    reason = detail[-1] if detail else f"exit status {result.exit_code}"
    return FloatingIPError(
        f"cannot read the addresses of interface {vip.interface!r} on this host: {reason} "
        "(is vip.interface right for this host?)"
    )


def _perform_vip(vip: VipSpec, action: str, run: _Run) -> ActionResult:
    address = vip.address.with_prefixlen
    if action == "status":
        held, result = _present(vip, run)
        if held is None:
            return run.done(result.argv, result, _no_interface(vip, result))
        run.notes.append(f"{address} is {'' if held else 'not '}held on {vip.interface}")
        return run.done(result.argv, result, held=held)
    if action == "restart":
        stopped = _perform_vip(vip, "stop", run)
        if not stopped.ok:
            return stopped
        return _perform_vip(vip, "start", run)
    if action not in ("start", "stop"):
        raise KeyError(f"unknown action {action!r}")
    starting = action == "start"
    held, result = _present(vip, run)
    if held is None:
        return run.done(result.argv, result, _no_interface(vip, result))
    change = vip.add_argv() if starting else vip.del_argv()
    if held == starting:
        run.notes.append(
            f"{address} already {'present' if starting else 'absent'} on {vip.interface}"
        )
        announce = vip.arping_argv() if starting and vip.arp_count else None
        return run.done(change, result, held=held, announce=announce)
    changed = run.run(change)
    if not changed.ok:
        return run.done(change, changed, _failure(changed), held=held)
    now, check = _present(vip, run)
    if now != starting:
        what = "added" if starting else "removed"
        error = FloatingIPError(
            f"{what} {address} on {vip.interface} but `{shlex.join(check.argv)}` "
            f"shows it {'absent' if starting else 'still present'}"
        )
        return run.done(change, changed, error, held=now)
    announce = vip.arping_argv() if starting and vip.arp_count else None
    return run.done(change, changed, held=now, announce=announce)
