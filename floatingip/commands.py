"""Running commands: argv only (never a shell), ``sudo -n``, a timeout that kills the process group.

The :class:`Executor` protocol is the seam between the rules and the host: :class:`LocalExecutor`
runs commands here (through :mod:`floatingip.process`) and :class:`NamespaceExecutor` runs them
inside a network namespace; :mod:`floatingip.testing` has the fakes for tests.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import re
import shlex
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from floatingip.errors import (
    CommandError,
    CommandNotFoundError,
    CommandStartError,
    CommandTimeout,
    UsageError,
)
from floatingip.process import OUTPUT_TAIL, run_process

__all__ = [
    "DEFAULT_TIMEOUT",
    "OUTPUT_TAIL",
    "CommandResult",
    "Executor",
    "LocalExecutor",
    "NamespaceExecutor",
    "as_argv",
    "command_argv",
    "ipv4_addresses",
    "ipv4_addresses_argv",
    "namespace_executors",
    "result_as",
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

    @property
    def last_line(self) -> str:
        """The last line of stderr, or of stdout when stderr is empty: what a failure says."""
        lines = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return lines[-1] if lines else ""

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
    if result.last_line:
        message += f": {result.last_line}"
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


def as_argv(argv: Sequence[str]) -> tuple[str, ...]:
    """``argv`` as the tuple an Executor records and runs; ValueError if it is empty."""
    if not argv:
        raise ValueError("empty argv")
    return tuple(argv)


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
        argv = as_argv(argv)
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        env = {**os.environ, **self._env} if self._env is not None else None
        program = find_program(argv[0], (env or os.environ).get("PATH", os.defpath))
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
        result = result_as(argv, finished)
        _log_result(result)
        return result.check() if check else result


def find_program(name: str, path: str | None = None) -> str | None:
    """Where ``name`` runs from, by shutil.which's rule on POSIX (a name with a slash is taken as
    it is; an empty PATH finds nothing), without importing shutil: it imports zlib, bz2 and lzma,
    0.6 MB of an idle manager's RSS for the lookup every command makes."""
    if os.sep in name:
        return name if _runnable(name) else None
    if path is None:
        path = os.environ.get("PATH", os.defpath)
    for directory in dict.fromkeys(path.split(os.pathsep)) if path else ():
        candidate = os.path.join(directory, name)
        if _runnable(candidate):
            return candidate
    return None


def _runnable(path: str) -> bool:
    return os.access(path, os.X_OK) and not os.path.isdir(path)


class _Outcome(Protocol):
    """What a finished command reports (a process's Finished, or another CommandResult)."""

    @property
    def exit_code(self) -> int | None: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...
    @property
    def duration(self) -> float: ...
    @property
    def timed_out(self) -> bool: ...


def result_as(argv: tuple[str, ...], done: _Outcome) -> CommandResult:
    """``done``'s outcome as the result of ``argv`` (what the caller asked to run, which may
    differ from what ran: an ssh executor's ``ssh ... argv``)."""
    return CommandResult(
        argv=argv,
        exit_code=done.exit_code,
        stdout=done.stdout,
        stderr=done.stderr,
        duration=done.duration,
        timed_out=done.timed_out,
    )


def _log_result(result: CommandResult) -> None:
    if result.ok:
        logger.debug("%s exited 0 in %.3fs", shlex.join(result.argv), result.duration)
    elif result.timed_out:
        logger.warning("%s timed out after %.1fs", shlex.join(result.argv), result.duration)
    else:  # DEBUG: the decision that ran it (or the probe's reader) reports the failure
        logger.debug("%s exited %s: %s", shlex.join(result.argv), result.exit_code, result.stderr)


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
        argv = as_argv(argv)
        # The namespace shares this host's filesystem: report a missing program as such, not as
        # the exit status 255 of `ip netns exec`.
        if find_program(argv[0]) is None:
            raise CommandNotFoundError(
                f"command not found: {argv[0]!r} (not on PATH, or not executable)", argv=argv
            )
        return self._inner.run(
            ("ip", "netns", "exec", self.netns, *argv), timeout=timeout, check=check
        )


def ipv4_addresses_argv(interface: str) -> tuple[str, ...]:
    """Lists the IPv4 addresses of ``interface``, one a line; needs no privilege."""
    return ("ip", "-o", "-4", "addr", "show", "dev", interface)


def ipv4_addresses(show_output: str) -> list[ipaddress.IPv4Interface]:
    """The addresses (with prefix length) in the output of :func:`ipv4_addresses_argv`."""
    found = []
    for line in show_output.splitlines():
        fields = line.split()
        if "inet" in fields[:-1]:
            try:
                found.append(ipaddress.IPv4Interface(fields[fields.index("inet") + 1]))
            except ValueError:
                continue
    return found


def __getattr__(name: str) -> Any:
    if name == "RecordingExecutor":  # moved to floatingip.testing: production code has no fakes
        warnings.warn(
            "floatingip.commands.RecordingExecutor is deprecated: "
            "use floatingip.testing.RecordingExecutor",
            DeprecationWarning,
            stacklevel=2,
        )
        from floatingip import testing

        return testing.RecordingExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def namespace_executors(specs: Sequence[str], inner: Executor) -> dict[str, Executor]:
    """``--netns HOST=NAMESPACE`` options: an executor per host, each running ``inner`` in its
    network namespace."""
    executors: dict[str, Executor] = {}
    for spec in specs:
        host, separator, netns = spec.partition("=")
        if not separator or not host or not netns:
            raise UsageError(f"--netns takes HOST=NAMESPACE, not {spec!r}")
        try:
            executors[host] = NamespaceExecutor(netns, inner=inner)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return executors
