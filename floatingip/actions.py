"""Performing a service action with an executor: one command for a classic service, the whole
add-verify-announce procedure for a built-in VIP service.

Given ``announce`` (the dispatcher's announcer), a start of a VIP announces it as soon as the
add succeeded, while the verify runs: clients learn the move one command earlier.  A verify
that then fails cancels the announcement (it is killed like a command at its timeout) and the
start fails as before, not held: nothing goes on claiming the VIP for this host.

Nothing here raises for what a command does: every outcome, failure included, comes back as an
:class:`ActionResult`.
"""

from __future__ import annotations

import functools
import logging
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from floatingip import privilege
from floatingip.commands import CommandResult, Executor
from floatingip.dad import probe_argv
from floatingip.errors import CommandError, FloatingIPError, VerificationError
from floatingip.service import ServiceDefinition
from floatingip.vip import DEFAULT_DAD_WAIT, Address, VipSpec
from floatingip.vocabulary import Action, Backend

__all__ = [
    "ActionResult",
    "Announce",
    "duplicate_probe_argv",
    "last_line",
    "no_interface",
    "perform",
    "probe",
    "probe_partly",
    "stop_again",
]

logger = logging.getLogger(__name__)

# Starts the announcements (argvs) of a VIP just added; returns what cancels them (with why)
Announce = Callable[[tuple[tuple[str, ...], ...]], Callable[[str], None]]


@dataclass(frozen=True)
class ActionResult:
    """What an action did: its main argv and result, every command it ran, and notes.

    ``held`` is whether the VIP is present afterwards (VIP services; None when unknown);
    ``partial``: a dual-stack VIP of which one address is present and not the other (not held,
    but not gone either).  ``announce``: the announcements (gratuitous ARP, neighbour
    advertisements) to send now that the VIP is up, if any.
    """

    argv: tuple[str, ...]
    result: CommandResult | None
    error: FloatingIPError | None = None
    steps: tuple[CommandResult, ...] = ()
    notes: tuple[str, ...] = ()
    held: bool | None = None
    announce: tuple[tuple[str, ...], ...] | None = None
    partial: bool = False

    # Written out, and kept by @dataclass: a frozen dataclass's own __init__ sets each field
    # through object.__setattr__, twice as slow; every command makes one (tests/test_actions.py)
    def __init__(
        self,
        argv: tuple[str, ...],
        result: CommandResult | None,
        error: FloatingIPError | None = None,
        steps: tuple[CommandResult, ...] = (),
        notes: tuple[str, ...] = (),
        held: bool | None = None,
        announce: tuple[tuple[str, ...], ...] | None = None,
        partial: bool = False,
    ) -> None:
        self.__dict__.update(
            argv=argv, result=result, error=error, steps=steps, notes=notes, held=held,
            announce=announce, partial=partial,
        )  # fmt: skip

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None and self.result.ok

    def after(self, steps: tuple[CommandResult, ...]) -> ActionResult:
        """This result, with ``steps`` (run before it, by a fence) first among its steps."""
        # not dataclasses.replace: it inspects the fields on every call, and this is every start
        return ActionResult(
            self.argv, self.result, self.error, steps + self.steps, self.notes, self.held,
            self.announce, self.partial,
        )  # fmt: skip


@dataclass
class _Run:
    """The commands of one action so far."""

    executor: Executor
    timeout: float
    steps: list[CommandResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    announce: Announce | None = None

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
        announce: tuple[tuple[str, ...], ...] | None = None,
        partial: bool = False,
    ) -> ActionResult:
        return ActionResult(
            argv, result, error, tuple(self.steps), tuple(self.notes), held, announce, partial
        )


def _failure(result: CommandResult) -> FloatingIPError:
    try:
        result.check()
    except FloatingIPError as exc:
        return exc
    return FloatingIPError(f"command failed: {shlex.join(result.argv)}")


def perform(
    service: ServiceDefinition,
    action: Action | str,
    executor: Executor,
    *,
    announce: Announce | None = None,
) -> ActionResult:
    """Run ``action`` of ``service`` through ``executor``; never raises for the commands.
    ``announce``: start a VIP's announcements through it once added (its result's ``announce``
    is then None: nothing is left to send), else they are in the result, to send."""
    run = _Run(executor, service.timeout, announce=announce)
    why = service.missing(action)
    if why is not None:
        return run.done((), None, FloatingIPError(why))
    try:
        if service.vip is None:
            return _perform_classic(service, action, run)
        return _perform_vip(service.vip.on_host(privilege.sudo_on(executor)), action, run)
    except FloatingIPError as exc:  # a program that does not exist
        argv = exc.argv if isinstance(exc, CommandError) else ()
        return run.done(argv, None, exc)
    except Exception as exc:  # an executor bug must not take the manager down
        logger.exception("executor failed on %s %s", service.name, action)
        return run.done((), None, FloatingIPError(f"executor failed: {exc!r}"))


def last_line(result: CommandResult, default: str | None = None) -> str:
    """The last line a failed command printed (stderr, else stdout): usually the reason."""
    if result.last_line:
        return result.last_line
    return default if default is not None else f"exit status {result.exit_code}"


def _present(vip: VipSpec, run: _Run) -> tuple[bool | None, CommandResult]:
    """Whether the VIP is on its interface; None if the interface cannot be read."""
    result = run.run(vip.show_argv())
    if not result.ok:
        return None, result
    return vip.held_in(result.stdout), result


def no_interface(vip: VipSpec, result: CommandResult) -> FloatingIPError:
    """The error of a VIP service whose interface cannot be read (``result``: the show)."""
    return FloatingIPError(
        f"cannot read the addresses of interface {vip.interface!r} on this host: "
        f"{last_line(result)} "
        "(is vip.interface right for this host?)"
    )


def probe(service: ServiceDefinition, executor: Executor) -> bool | None:
    """Whether the service's VIP is held through ``executor``'s host; None if that cannot be
    told (no known address or status command, or the status failed)."""
    return probe_partly(service, executor)[0]


def probe_partly(service: ServiceDefinition, executor: Executor) -> tuple[bool | None, bool]:
    """:func:`probe`, and whether the VIP is there only in part (one address of a dual-stack
    VIP, or an IPv6 one still tentative): it counts as held, for whoever asks whether it is
    gone (never two holders), and needs completing where it is meant to be."""
    if not service.reports_held:
        return None, False
    result = perform(service, Action.STATUS, executor)
    if not result.ok:
        return None, False
    return bool(result.held or result.partial), result.partial


def duplicate_probe_argv(
    service: ServiceDefinition, *, sudo: bool | None = None, executor: Executor | None = None
) -> tuple[str, ...] | None:
    """The duplicate address probe that starting ``service`` runs when the previous holder is
    not confirmed gone; None if it has none (vip.dad.wait=0, or no known VIP and interface).
    ``sudo``: as a non-root account would run it (None: as it will run through ``executor``,
    or this process)."""
    if service.vip is not None:
        if service.vip.dad_wait <= 0:
            return None
        if sudo is None and executor is not None:
            return service.vip.on_host(privilege.sudo_on(executor)).dad_argv()
        return service.vip.dad_argv(sudo)
    target = service.target
    address = target.address_text
    if service.commands[Action.STATUS] is None or address is None or target.interface is None:
        return None
    if sudo is None:
        sudo = privilege.use_sudo() if executor is None else privilege.use_sudo_on(executor)
    use_sudo = sudo
    return _classic_probe_argv(target.interface, address, use_sudo)


@functools.lru_cache(maxsize=64)
def _classic_probe_argv(interface: str, address: str, sudo: bool) -> tuple[str, ...]:
    # built once per service and sudo mode: every start of a classic service asks for it
    return probe_argv(interface, address, DEFAULT_DAD_WAIT, sudo=sudo)


def _perform_classic(service: ServiceDefinition, action: Action | str, run: _Run) -> ActionResult:
    target = service.target if service.commands[Action.STATUS] is not None else None
    argv = service.argv(action)
    result = run.run(argv)
    if not result.ok:
        return run.done(argv, result, _failure(result))
    if action == Action.STATUS and target is not None and target.address is not None:
        held = target.held_in(result.stdout)
        run.notes.append(f"{target.address} is {'' if held else 'not '}held")
        return run.done(argv, result, held=held)
    if action == Action.STOP and target is not None and target.address is not None:
        # never two holders: the VIP must be confirmed gone before another host takes it
        status = run.run(service.argv(Action.STATUS))
        if status.ok and target.held_in(status.stdout):
            error = VerificationError(
                f"stop ran but `{shlex.join(status.argv)}` still shows {target.address}"
            )
            return run.done(argv, result, error, held=True)
        return run.done(argv, result, held=False if status.ok else None)
    if action == Action.START:  # gratuitous ARP, as a built-in VIP service sends (issue 17)
        arping = service.announcement.argv(privilege.use_sudo_on(run.executor))
        return run.done(argv, result, announce=None if arping is None else (arping,))
    return run.done(argv, result)


def _perform_vip(vip: VipSpec, action: Action | str, run: _Run) -> ActionResult:
    if action == Action.STATUS:
        result = run.run(vip.show_argv())
        if not result.ok:
            return run.done(result.argv, result, no_interface(vip, result))
        whole = vip.held_in(result.stdout)
        found = vip.found_in(result.stdout)
        partial = not whole and bool(found)
        if partial:
            missing = [a.with_prefixlen for a in vip.addresses if a not in found]
            run.notes.append(
                f"{vip.spelled} is partly held on {vip.interface}: "
                f"{', '.join(a.with_prefixlen for a in found)} present (or not usable: "
                f"tentative or dadfailed), {', '.join(missing) or 'none'} missing"
            )
        else:
            run.notes.append(f"{vip.spelled} is {'' if whole else 'not '}held on {vip.interface}")
        return run.done(result.argv, result, held=whole, partial=partial)
    if action == Action.RESTART:
        stopped = _perform_vip(vip, Action.STOP, run)
        if not stopped.ok:
            return stopped
        return _perform_vip(vip, Action.START, run)
    starting = action == Action.START
    change = vip.add_argv() if starting else vip.del_argv()
    if vip.backend == Backend.IP:
        return _change_then_verify(vip, starting, run)
    held, result = _present(vip, run)
    if held is None:
        return run.done(result.argv, result, no_interface(vip, result))
    if held == starting:
        run.notes.append(
            f"{vip.spelled} already {'present' if starting else 'absent'} on {vip.interface}"
        )
        announce = vip.announce_argvs() if starting else None
        return run.done(change, result, held=held, announce=announce or None)
    changed = run.run(change)
    if not changed.ok:
        return run.done(change, changed, _failure(changed), held=held)
    return _verify(vip, starting, change, changed, run)


# What `ip addr add` of a present address and `ip addr del` of an absent one answer (older
# iproute2 prints the errno's text, newer the kernel's extended ack: "Error: ipv6: address
# already assigned." for IPv6), compared in lower case.
_ALREADY = {
    True: ("file exists", "address already assigned"),
    False: ("cannot assign requested address", "address not found"),
}


def _change_then_verify(vip: VipSpec, starting: bool, run: _Run) -> ActionResult:
    """The fast path of the ip backend: change each address first (``ip`` itself says if there
    was nothing to do), then verify all with one look: one command fewer than looking first, on
    the path of every failover.  A start that fails half way removes what it added: a
    dual-stack VIP is one unit, never left half taken."""
    added: list[Address] = []
    change: tuple[str, ...] = ()
    changed = CommandResult((), 0, "", "", 0.0)
    for address in vip.addresses:
        change = vip.add_argv(address=address) if starting else vip.del_argv(address=address)
        changed = run.run(change)
        if changed.ok:
            added += [address] if starting else []
            continue
        if not any(text in changed.stderr.lower() for text in _ALREADY[starting]):
            return _failed_change(vip, starting, change, changed, added, run)
        where = f"{address.with_prefixlen} already {'present' if starting else 'absent'}"
        run.notes.append(f"{where} on {vip.interface}")
        changed = CommandResult(changed.argv, 0, changed.stdout, "", changed.duration)
    return _verify(vip, starting, vip.add_argv() if starting else vip.del_argv(), changed, run)


def _failed_change(
    vip: VipSpec,
    starting: bool,
    change: tuple[str, ...],
    changed: CommandResult,
    added: list[Address],
    run: _Run,
) -> ActionResult:
    for address in added:  # undo this start's other half
        undone = run.run(vip.del_argv(address=address))
        what = "removed again" if undone.ok else f"NOT removed: {last_line(undone)}"
        run.notes.append(f"{address.with_prefixlen} {what} (the start failed)")
    result = run.run(vip.show_argv())
    if not result.ok:
        return run.done(result.argv, result, no_interface(vip, result))
    held = vip.held_in(result.stdout)
    partial = not held and bool(vip.found_in(result.stdout))
    return run.done(change, changed, _failure(changed), held=held, partial=partial)


def _verify(
    vip: VipSpec, starting: bool, change: tuple[str, ...], changed: CommandResult, run: _Run
) -> ActionResult:
    announce = vip.announce_argvs() if starting else ()
    cancel = run.announce(announce) if run.announce is not None and announce else None
    check = run.run(vip.show_argv())
    if cancel is not None and not (check.ok and vip.held_in(check.stdout)):
        cancel(f"the verify after the add failed: `{shlex.join(check.argv)}`")
        run.notes.append("announcement stopped: the verify failed")
    if not check.ok:
        return run.done(check.argv, check, no_interface(vip, check))
    held = vip.held_in(check.stdout)
    found = vip.found_in(check.stdout)
    if held != starting or (not starting and found):
        what = "added" if starting else "removed"
        wrong = [a for a in vip.addresses if (a in found) != starting] if found else []
        shown = ", ".join(a.with_prefixlen for a in wrong) or vip.spelled
        ipv6 = any(a.version == 6 for a in (wrong or vip.addresses))
        absent = "absent or not usable (tentative, dadfailed)" if ipv6 else "absent"
        state = absent if starting else "still present"
        error = VerificationError(
            f"{what} {vip.spelled} on {vip.interface} but `{shlex.join(check.argv)}` "
            f"shows {shown} {state}"
        )
        return run.done(change, changed, error, held=held, partial=not held and bool(found))
    if cancel is not None:  # already on its way
        return run.done(change, changed, held=held)
    return run.done(change, changed, held=held, announce=announce or None)


def stop_again(
    service: ServiceDefinition, executor: Executor, started: ActionResult, why: str
) -> ActionResult:
    """A start that crossed a drop_all: stop it again; it fails, and is not held."""
    stop = perform(service, Action.STOP, executor)
    undone = "stopped again" if stop.ok else f"stopping it again FAILED: {stop.error}"
    error = FloatingIPError(f"every VIP was dropped while this start ran ({why}); {undone}")
    return ActionResult(started.argv, started.result, error, (*started.steps, *stop.steps))
