"""The fence: whether this host may take a service's VIP now, asked before every start.

The Manager asks its fence before it starts a service and tells it once a stop is confirmed (the
VIP is gone). Rule files never see it: rule authors write policy, the Manager owns safety.

- Embedded (one process, or managers fed in lockstep): the default fence is duplicate address
  detection, a probe that no other host answers for the VIP when the previous holder is not
  confirmed gone.
- Distributed (a manager per host): a lease-backed lock per service on etcd; a host may hold the
  VIP only while it holds the lock, and releases the lock only after the VIP is confirmed gone.

A fence that cannot answer (etcd unreachable, a probe that cannot run) refuses: it fails closed.
A lock that the previous holder released cleanly (it confirmed the VIP gone first) is granted as
``vacated``: nobody else can hold the VIP, so :class:`Fences` skips the checks that only look
for another holder (the duplicate address check, 0.2 s of listening).  A lock freed any other way
(a lease that expired, the first holder ever) is not vacated, and the check runs.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from floatingip import privilege
from floatingip.actions import ActionResult, duplicate_probe_argv, last_line, perform
from floatingip.commands import CommandResult, Executor
from floatingip.dad import FREE, IN_USE
from floatingip.errors import CommandError, DuplicateAddressError, FloatingIPError
from floatingip.service import ServiceDefinition
from floatingip.vocabulary import Action

__all__ = [
    "Abandons",
    "DuplicateAddressFence",
    "Fence",
    "FenceAnswer",
    "Fences",
    "OpenFence",
    "ProbedAnswer",
    "give_back",
    "refused",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class FenceAnswer:
    """Granted, or refused with the reason the operator sees (result, history, log, ``ls``).
    ``vacated``: granted because the previous holder confirmed the VIP gone before it let go."""

    granted: bool
    reason: str = ""
    vacated: bool = False


@runtime_checkable
class Fence(Protocol):
    """What the Manager asks before a start and tells after a confirmed stop.

    Both are called from the Manager's dispatching thread, under the service's lock, so calls for
    one service never overlap; they must return within a bound (a fence that waits on a network
    uses its own timeout) and must not raise: a problem is a refusal with its reason.
    """

    def acquire(self, service: str, *, host: str, datasource: str | None) -> FenceAnswer:
        """May ``host`` take ``service``'s VIP now (started for ``datasource``)?"""
        ...

    def release(self, service: str, *, host: str) -> None:
        """``service``'s VIP is confirmed gone from ``host``: others may take it."""
        ...


@runtime_checkable
class Abandons(Protocol):
    """A fence that can give back a grant whose start never ran (:class:`Fences`, when a later
    fence refuses): unlike ``release``, it claims nothing about where the VIP is."""

    def abandon(self, service: str, *, host: str) -> None: ...


class OpenFence:
    """Grants everything: for tests of rule files, and managers whose every host it runs itself."""

    def acquire(self, service: str, *, host: str, datasource: str | None) -> FenceAnswer:
        return FenceAnswer(granted=True)

    def release(self, service: str, *, host: str) -> None:
        return None


class Fences:
    """Several fences that must all grant, asked in order (say, the etcd lock, then the duplicate
    address check for a holder that died without releasing).  After a ``vacated`` grant, the
    fences that only look for another holder (``finds_other_holders``) are not asked.  A refusal
    gives back what the fences before it granted (``abandon`` where a fence has it), so a lock is
    not kept for a VIP that was not taken."""

    def __init__(self, *fences: Fence) -> None:
        self._fences = fences

    def acquire(self, service: str, *, host: str, datasource: str | None) -> FenceAnswer:
        granted: list[Fence] = []
        answer = FenceAnswer(granted=True)
        vacated = False
        for fence in self._fences:
            if vacated and getattr(fence, "finds_other_holders", False):
                continue  # the previous holder confirmed it gone: nobody else has it
            answer = fence.acquire(service, host=host, datasource=datasource)
            if not answer.granted:
                for earlier in reversed(granted):
                    give_back(earlier, service, host=host)
                return answer
            vacated = vacated or answer.vacated
            granted.append(fence)
        return answer  # the last one's, with its steps (a probe's commands)

    def release(self, service: str, *, host: str) -> None:
        for fence in reversed(self._fences):
            fence.release(service, host=host)

    def abandon(self, service: str, *, host: str) -> None:
        for fence in reversed(self._fences):
            give_back(fence, service, host=host)


def give_back(fence: Fence, service: str, *, host: str) -> None:
    """Return a grant without claiming the VIP is confirmed gone: ``abandon`` where the fence
    has it (no clean release recorded: the next holder runs its own check), else ``release``."""
    if isinstance(fence, Abandons):
        fence.abandon(service, host=host)
    else:
        fence.release(service, host=host)


@dataclass(frozen=True, kw_only=True)
class ProbedAnswer(FenceAnswer):
    """An answer that ran commands to decide: the Manager adds ``steps`` to the outcome, and
    reports ``error`` (when refused) as the start's error."""

    steps: tuple[CommandResult, ...] = ()
    error: FloatingIPError | None = None


class DuplicateAddressFence:
    """The default fence: duplicate address detection (floatingip/dad.py).

    When ``needed()`` (the previous holder is not confirmed gone: a datasource runs on a host the
    manager cannot see), it grants a start only if no other host answers for the VIP.  It fails
    closed: a probe that cannot run refuses, with the reason and the fix.  A VIP service whose
    address is already on this host's interface is not probed; nor one with vip.dad.wait=0, nor
    a classic service whose address and interface are not known.
    """

    finds_other_holders: ClassVar[bool] = True  # skipped by Fences after a vacated grant

    def __init__(
        self,
        services: Mapping[str, ServiceDefinition],
        executors: Mapping[str, Executor],
        *,
        needed: Callable[[], bool] = lambda: True,
    ) -> None:
        self._services = services
        self._executors = executors
        self._needed = needed

    def acquire(self, service: str, *, host: str, datasource: str | None) -> FenceAnswer:
        definition = self._services.get(service)
        executor = self._executors.get(host)
        if definition is None or executor is None or not self._needed():
            return FenceAnswer(granted=True)  # the Manager reports what else is wrong
        steps: list[CommandResult] = []
        try:
            return self._probe(definition, executor, steps)
        except Exception as exc:  # an executor bug: fail closed, as the start would fail
            logger.exception("executor failed on the duplicate address check of %s", service)
            error = FloatingIPError(f"executor failed: {exc!r}")
            return ProbedAnswer(granted=False, reason=str(error), steps=tuple(steps), error=error)

    def release(self, service: str, *, host: str) -> None:
        return None  # the probe asks the network itself: nothing to give back

    def _probe(
        self, service: ServiceDefinition, executor: Executor, steps: list[CommandResult]
    ) -> FenceAnswer:
        if service.vip is not None and service.vip.dad_wait > 0:
            status = perform(service, Action.STATUS, executor)
            steps += status.steps
            if status.error is not None:
                return _refuse(status.error, steps)
            if status.held:  # already here: nobody else may answer for it
                return ProbedAnswer(granted=True, steps=tuple(steps))
        argv = duplicate_probe_argv(service, executor=executor)
        if argv is None:
            return ProbedAnswer(granted=True, steps=tuple(steps))
        refused = _duplicate_check(service, argv, executor, steps)
        if refused is not None:
            return _refuse(refused, steps)
        return ProbedAnswer(granted=True, steps=tuple(steps))


def _refuse(error: FloatingIPError, steps: list[CommandResult]) -> ProbedAnswer:
    return ProbedAnswer(granted=False, reason=str(error), steps=tuple(steps), error=error)


def _duplicate_check(
    service: ServiceDefinition,
    argv: tuple[str, ...],
    executor: Executor,
    steps: list[CommandResult],
) -> FloatingIPError | None:
    """Run the probe ``argv``; refuse (an error) if another host answers for the VIP, and also
    if the probe cannot tell (fail closed): the old holder may still have it."""
    target = service.target
    vip = service.vip
    address = ", ".join(str(a.ip) for a in vip.addresses) if vip else str(target.address)
    interface = str(target.interface)
    logger.info("duplicate address check of %s for %s on %s", address, service.name, interface)
    try:
        result = executor.run(argv, timeout=service.timeout, check=False)
    except FloatingIPError as exc:  # its program is missing, say
        if isinstance(exc, CommandError):
            return _unprobed(service, address, str(exc), exc.argv or argv, exc.result)
        return _unprobed(service, address, str(exc), argv, None)
    steps.append(result)
    if result.exit_code == IN_USE and "in use" in result.stdout:
        answer = result.stdout.strip() or f"{address} answers on {interface}"
        return DuplicateAddressError(
            f"refusing to take {address}: another host still holds it ({answer}); "
            "it must be released there first"
        )
    if result.exit_code != FREE:
        return _unprobed(service, address, last_line(result), argv, result)
    return None


def _unprobed(
    service: ServiceDefinition,
    address: str,
    reason: str,
    argv: tuple[str, ...],
    result: CommandResult | None,
) -> CommandError:
    fixes = []
    if argv[:1] == ("sudo",):
        fixes.append("allow it with the lines that `floatingip sudoers` prints")
    fixes.append("`floatingip check` tests it")
    if service.vip is not None:
        fixes.append("vip.dad.wait=0 takes the VIP without checking")
    return CommandError(
        f"not taking {address}: the duplicate address check could not run ({reason}), so "
        f"another host may still hold it; the check runs `{shlex.join(argv)}`: " + "; ".join(fixes),
        argv=argv,
        result=result,
    )


def refused(
    service: ServiceDefinition,
    action: Action | str,
    answer: FenceAnswer,
    executor: Executor | None = None,
) -> ActionResult:
    """The result of a start the fence refused: no command ran (but the fence's own probes).
    Its argv is what would have run through ``executor``, whose host's login decides sudo."""
    taking = Action.START if service.vip is not None else action
    argv = _would_run(service, taking, executor)
    if isinstance(answer, ProbedAnswer):
        error = answer.error or FloatingIPError(answer.reason)
        return ActionResult(argv, None, error, answer.steps)
    reason = answer.reason or "no reason given"
    return ActionResult(argv, None, FloatingIPError(f"the fence refused it: {reason}"))


def _would_run(
    service: ServiceDefinition, action: Action | str, executor: Executor | None
) -> tuple[str, ...]:
    if service.missing(action) is not None:
        return ()
    if service.vip is not None:  # as actions.perform builds it, for the host it runs on
        return service.vip.on_host(privilege.sudo_on(executor)).add_argv()
    return service.argv(action)
