"""The shell's ``dead`` and ``alive`` commands: declaring a host that cannot be reached fenced
(its VIP moves, floatingip.dead), and back.  A mixin of :class:`floatingip.shell.Shell`.  And
its ``--unreachable-after`` option: how long a command to a ``--netns`` host may take."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from floatingip.hosts import DEFAULT_UNREACHABLE_AFTER
from floatingip.results import ChangeResult
from floatingip.shell_backend import ShellBackend
from floatingip.validation import check_seconds

__all__ = ["HostCommands", "add_unreachable_option", "unreachable_after"]


def add_unreachable_option(parser: argparse.ArgumentParser) -> None:
    # Unset means the default, so that --etcd can tell that it was given and refuse it.
    parser.add_argument(
        "--unreachable-after",
        type=float,
        metavar="SECONDS",
        help="report a --netns host unreachable when a command there has not answered within "
        f"SECONDS, and go on (0: wait for command.timeout; default {DEFAULT_UNREACHABLE_AFTER:g})",
    )


def unreachable_after(args: argparse.Namespace) -> float:
    """``--unreachable-after``, checked (UsageError naming the option)."""
    given = args.unreachable_after
    seconds = DEFAULT_UNREACHABLE_AFTER if given is None else given
    return check_seconds(seconds, "--unreachable-after", minimum=0.001)


class HostCommands:
    """``dead`` and ``alive``, for a backend that has them (a Manager; not ``--etcd``)."""

    manager: ShellBackend

    if TYPE_CHECKING:  # the Shell's own

        def _say(self, text: str) -> None: ...

        def _error(self, text: str) -> None: ...

        def _report(self, result: ChangeResult) -> bool: ...

        def _run(self, action: Callable[[], None]) -> None: ...

    def do_dead(self, arg: str) -> bool:
        """dead [<host> [reason...]]: <host> is fenced (powered off): its VIP moves; alone: list"""
        parts = arg.split(maxsplit=1)
        declare = getattr(self.manager, "declare_dead", None)
        if declare is None:  # shell --etcd: the agents' leases are the fence there
            self._error("dead: not with --etcd: a dead host's lease expires and frees its VIPs")
        elif not parts:
            listed = [(host, "DEAD", why) for host, why in self._marked("dead")]
            listed += [(host, "UNREACHABLE", why) for host, why in self._marked("unreachable")]
            for host, what, why in listed:
                self._say(f"  {host}: {what} ({why})")
            if not listed:
                self._say("  no host is declared dead or unreachable")
        else:
            reason = parts[1] if len(parts) > 1 else "declared dead in the shell"
            self._run(lambda: self._declared(parts[0], declare(parts[0], reason)))
        return False

    def do_alive(self, arg: str) -> bool:
        """alive <host>: a host declared dead is back; a VIP still on it is removed first"""
        parts = arg.split()
        declare = getattr(self.manager, "declare_alive", None)
        if len(parts) != 1 or declare is None:
            self._error("usage: alive <host> (a host declared dead; not with --etcd)")
            return False
        self._run(lambda: self._declared(parts[0], declare(parts[0])))
        return False

    def _marked(self, which: str) -> list[tuple[str, str]]:
        return sorted(getattr(self.manager, which, {}).items())

    def _declared(self, host: str, result: ChangeResult) -> None:
        dead = host in dict(self._marked("dead"))
        if dead and result.change.endswith("refused"):
            self._report(result)  # why: the stop that failed there
            self._error(f"host '{host}' stays DEAD: its VIPs could not be confirmed gone")
            return
        self._say(f"Host '{host}' is now declared {'DEAD' if dead else 'ALIVE'}")
        self._report(result)  # what the rules did then: the VIP moved, or why not

    def complete_dead(self, text: str, line: str, begin: int, end: int) -> list[str]:
        if len(line[:begin].split()) != 1:
            return []
        return [host + " " for host in sorted(self.manager.hosts) if host.startswith(text)]

    complete_alive = complete_dead
