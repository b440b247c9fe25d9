"""Running commands: argv only (never a shell), ``sudo -n``, a timeout that kills the process group.

The :class:`Executor` protocol is the seam between the rules and the host: :class:`LocalExecutor`
runs commands here (through :mod:`floatingip.process`), :class:`NamespaceExecutor` runs them
inside a network namespace, and :class:`RecordingExecutor` records them so that rule files can be
tested without touching the network.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shlex
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from floatingip.errors import (
    CommandError,
    CommandNotFoundError,
    CommandStartError,
    CommandTimeout,
)
from floatingip.process import OUTPUT_TAIL, run_process

__all__ = [
    "DEFAULT_TIMEOUT",
    "OUTPUT_TAIL",
    "CommandResult",
    "Executor",
    "LocalExecutor",
    "NamespaceExecutor",
    "RecordingExecutor",
    "command_argv",
    "shell_syntax",
    "split_sudo",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
# How long a timed-out command has between SIGTERM and SIGKILL.  SIGTERM comes first because sudo
# relays it to the command it runs as root, which the caller could not otherwise kill.
DEFAULT_KILL_GRACE = 1.0

_SUDO_SENT_FOR_PASSWORD = ("a password is required", "a terminal is required")
_SUDO_REFUSED = ("is not allowed to execute", "is not in the sudoers file", "may not run sudo")


@dataclass(frozen=True)
class CommandResult:
    """What a command did: its argv, exit code (None if killed), output, duration, and timeout."""

    argv: tuple[str, ...]
    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def check(self) -> CommandResult:
        """Return self if the command succeeded, else raise CommandError or CommandTimeout."""
        if self.timed_out:
            raise CommandTimeout(
                f"command timed out after {self.duration:.1f}s and was killed with its "
                f"process group: {shlex.join(self.argv)}",
                argv=self.argv,
                result=self,
            )
        if self.exit_code != 0:
            raise CommandError(_failure_message(self), argv=self.argv, result=self)
        return self


def _failure_message(result: CommandResult) -> str:
    status = (
        "with an unknown status" if result.exit_code is None else f"with status {result.exit_code}"
    )
    message = f"command exited {status}: {shlex.join(result.argv)}"
    detail = (result.stderr.strip() or result.stdout.strip()).splitlines()
    if detail:
        message += f": {detail[-1]}"
    sudo_refused = any(text in result.stderr for text in _SUDO_SENT_FOR_PASSWORD + _SUDO_REFUSED)
    if _uses_sudo(result.argv) and sudo_refused:
        message += (
            " (sudo needs a NOPASSWD sudoers entry for this exact command: "
            "`floatingip sudoers --user USER` prints the lines)"
        )
    return message


def _uses_sudo(argv: Sequence[str]) -> bool:
    return bool(argv) and os.path.basename(argv[0]) == "sudo"


# sudo options that take a value (sudo(8)); the command starts after the options.
_OPTIONS_WITH_VALUE = {"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-T", "-U", "-c"}


def split_sudo(argv: Sequence[str]) -> tuple[str, tuple[str, ...]] | None:
    """For a ``sudo ... cmd args`` argv: (run-as user, the command's argv); None without sudo."""
    if not argv or os.path.basename(argv[0]) != "sudo":
        return None
    runas = "root"
    index = 1
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            index += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if arg in _OPTIONS_WITH_VALUE and index + 1 < len(argv):
            if arg == "-u":
                runas = argv[index + 1]
            index += 2
            continue
        if arg.startswith("-u") and len(arg) > 2:
            runas = arg[2:]
        index += 1
    return runas, tuple(argv[index:])


@functools.lru_cache(maxsize=4096)
def command_argv(command: str) -> tuple[str, ...]:
    """Split a command line as a POSIX shell would, without a shell; make sudo non-interactive.

    ``sudo`` gets ``-n`` so that a missing sudoers entry fails at once instead of waiting for a
    password.  Raises ValueError for a line that cannot be split or is empty.
    """
    argv = shlex.split(command)
    if not argv:
        raise ValueError("empty command")
    if _uses_sudo(argv):
        options = []
        for arg in argv[1:]:
            if not arg.startswith("-") or arg == "--":
                break
            options.append(arg)
        if "-n" not in options and "--non-interactive" not in options:
            argv.insert(1, "-n")
    return tuple(argv)


_NAME_START = re.compile(r"[A-Za-z_{(0-9@*#?$!-]")


def shell_syntax(command: str) -> list[str]:
    """Return the shell constructs (operators, redirections, expansions) unquoted in ``command``.

    Commands never run through a shell, so these would reach the program as literal arguments:
    naming them lets a service file be refused with a clear reason instead of misbehaving.
    """
    found: list[str] = []
    quote = ""
    i, n = 0, len(command)
    while i < n:
        c = command[i]
        if quote == "'":
            if c == "'":
                quote = ""
        elif c == "\\":
            i += 1
        elif c == "'" and not quote:
            quote = "'"
        elif c == '"':
            quote = "" if quote else '"'
        elif c == "`":
            found.append("`...` command substitution")
            closing = command.find("`", i + 1)
            i = n if closing < 0 else closing
        elif c == "$" and i + 1 < n and _NAME_START.match(command[i + 1]):
            found.append(
                "$(...) command substitution" if command[i + 1] == "(" else "$ variable expansion"
            )
        elif not quote and c in ";&|<>":
            operator = command[i : i + 2] if command[i : i + 2] in ("&&", "||", ">>") else c
            found.append(f"{operator!r} operator")
            i += len(operator) - 1
        i += 1
    return found


@runtime_checkable
class Executor(Protocol):
    """Runs one command given as argv.  Implementations never involve a shell."""

    def run(
        self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, check: bool = True
    ) -> CommandResult:
        """Run ``argv``; with ``check``, raise CommandError/CommandTimeout unless it succeeds.

        A program that does not exist always raises CommandNotFoundError; one that exists but
        cannot be executed (a CRLF ``#!`` line, a missing interpreter), CommandStartError.
        """
        ...


class LocalExecutor:
    """Runs commands on this host: no shell, a new session, group-wide kill on timeout, a bounded
    tail of the output, and nothing left running after the command or its manager
    (see :mod:`floatingip.process`).

    The environment is inherited; ``env`` adds or overrides variables.
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        kill_grace: float = DEFAULT_KILL_GRACE,
    ) -> None:
        self._env = dict(env) if env else None
        self._kill_grace = kill_grace

    def run(
        self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, check: bool = True
    ) -> CommandResult:
        argv = tuple(argv)
        if not argv:
            raise ValueError("empty argv")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        env = {**os.environ, **self._env} if self._env is not None else None
        program = shutil.which(argv[0], path=(env or os.environ).get("PATH", os.defpath))
        if program is None:
            raise CommandNotFoundError(
                f"command not found: {argv[0]!r} (not on PATH, or not executable)", argv=argv
            )
        logger.debug("running %s (timeout %ss)", shlex.join(argv), timeout)
        try:
            finished = run_process(
                argv, program, env=env, timeout=timeout, kill_grace=self._kill_grace
            )
        except CommandStartError as exc:
            logger.info("%s", exc)
            raise
        result = CommandResult(
            argv=argv,
            exit_code=finished.exit_code,
            stdout=finished.stdout,
            stderr=finished.stderr,
            duration=finished.duration,
            timed_out=finished.timed_out,
        )
        _log_result(result)
        return result.check() if check else result


def _log_result(result: CommandResult) -> None:
    if result.ok:
        logger.debug("%s exited 0 in %.3fs", shlex.join(result.argv), result.duration)
    elif result.timed_out:
        logger.warning("%s timed out after %.1fs", shlex.join(result.argv), result.duration)
    else:
        logger.info("%s exited %s: %s", shlex.join(result.argv), result.exit_code, result.stderr)


_NETNS_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class NamespaceExecutor:
    """Runs each command inside network namespace ``netns`` (``ip netns exec NETNS argv...``)."""

    def __init__(self, netns: str, *, inner: Executor | None = None) -> None:
        if not _NETNS_NAME.fullmatch(netns) or netns in (".", ".."):
            raise ValueError(f"invalid network namespace name: {netns!r}")
        self.netns = netns
        self._inner = inner if inner is not None else LocalExecutor()

    def run(
        self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, check: bool = True
    ) -> CommandResult:
        argv = tuple(argv)
        if not argv:
            raise ValueError("empty argv")
        # The namespace shares this host's filesystem: report a missing program as such, not as
        # the exit status 255 of `ip netns exec`.
        if shutil.which(argv[0]) is None:
            raise CommandNotFoundError(
                f"command not found: {argv[0]!r} (not on PATH, or not executable)", argv=argv
            )
        return self._inner.run(
            ("ip", "netns", "exec", self.netns, *argv), timeout=timeout, check=check
        )


class RecordingExecutor:
    """Records each argv in :attr:`calls` instead of running it; for testing rule files.

    Every command succeeds.  So that built-in VIP services (which verify what they did) can be
    tested too, it keeps the addresses that ``ip addr add/del`` and ``ifconfig ALIAS ADDRESS`` /
    ``ifconfig ALIAS down`` would configure, in :attr:`addresses`, and answers
    ``ip ... addr show dev IFACE`` with them; any other command gets empty output.  ``respond``
    may return another CommandResult for a given argv (a failure, say) and then decides alone.
    """

    def __init__(self, respond: Callable[[tuple[str, ...]], CommandResult] | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.addresses: dict[str, dict[str, str]] = {}  # interface -> {address/prefix: label}
        self._respond = respond
        self._lock = threading.Lock()

    def _as_a_host(self, argv: tuple[str, ...]) -> CommandResult:
        words = list(argv[2:] if argv[:2] == ("sudo", "-n") else argv)
        program = os.path.basename(words[0])
        if program == "ip" and "addr" in words and "dev" in words[:-1]:
            interface = words[words.index("dev") + 1]
            on = self.addresses.setdefault(interface, {})
            verb = words[words.index("addr") + 1] if words.index("addr") + 1 < len(words) else ""
            if verb == "show":
                lines = [
                    f"2: {interface}    inet {address} scope global {label}"
                    for address, label in on.items()
                ]
                return CommandResult(argv, 0, stdout="".join(line + "\n" for line in lines))
            address = words[words.index(verb) + 1] if verb in ("add", "del") else ""
            if verb == "add":
                if address in on:
                    return CommandResult(argv, 2, stderr="Error: ipv4: Address already assigned.\n")
                label = words[words.index("label") + 1] if "label" in words[:-1] else interface
                on[address] = label
            elif verb == "del" and on.pop(address, None) is None:
                return CommandResult(argv, 2, stderr="Error: ipv4: Address not found.\n")
        elif program == "ifconfig" and len(words) == 2:  # the status of an alias
            label = words[1]
            on = self.addresses.get(label.split(":", 1)[0], {})
            shown = [f"        inet {a.split('/')[0]}" for a, owner in on.items() if owner == label]
            return CommandResult(
                argv, 0, stdout="\n".join([f"{label}: flags=4163<UP>", *shown]) + "\n"
            )
        elif program == "ifconfig" and len(words) >= 3:
            label = words[1]
            on = self.addresses.setdefault(label.split(":", 1)[0], {})
            for address in [a for a, owner in on.items() if owner == label]:
                del on[address]  # an alias holds one address: setting or downing it drops the old
            if words[2] != "down":
                prefix = 24
                if "netmask" in words[:-1]:
                    mask = words[words.index("netmask") + 1]
                    prefix = sum(bin(int(part)).count("1") for part in mask.split("."))
                on[f"{words[2]}/{prefix}"] = label
        return CommandResult(argv, 0)

    def run(
        self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, check: bool = True
    ) -> CommandResult:
        argv = tuple(argv)
        if not argv:
            raise ValueError("empty argv")
        with self._lock:
            self.calls.append(argv)
            result = self._respond(argv) if self._respond is not None else self._as_a_host(argv)
        return result.check() if check else result
