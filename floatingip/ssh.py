"""Running commands on another host with the system's OpenSSH client.

``ssh`` rather than a Python ssh library: the user's ssh configuration, keys, known_hosts,
agent and ControlMaster apply, as they do to MHA's own ssh and to every hand-written VIP script.

ssh joins the words after the host into one string that the remote account's shell parses, so
each word is quoted with :func:`shlex.quote`: the remote program receives exactly the local argv
(spaces, quotes, ``;``, ``$(...)`` and newlines stay literal).  ``BatchMode=yes``: ssh never
prompts (for a password, a passphrase or a new host key), it fails.  The command's timeout kills
the local ssh (and it dies with its manager, like every command, :mod:`floatingip.process`);
sshd does not signal a command without a terminal when the connection drops, so the remote
command also runs under coreutils' ``timeout`` a little longer than the local one: a slow
``ip addr add`` cannot land long after the manager gave up on it.  ssh exits 255 when it
cannot connect or authenticate: that result is "unreachable" (floatingip.hosts), not a failed
command.
"""

from __future__ import annotations

import logging
import math
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from floatingip.commands import (
    DEFAULT_KILL_GRACE,
    DEFAULT_TIMEOUT,
    CommandResult,
    Executor,
    LocalExecutor,
    as_argv,
)
from floatingip.errors import CommandNotFoundError, HostUnreachableError, UsageError

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "SSH_FAILED", "SshExecutor", "SshTarget"]

logger = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT = 5  # seconds; MHA's ssh_connection_timeout default
SSH_FAILED = 255  # what ssh exits with when it cannot connect or authenticate (ssh(1))
# what GNU timeout prints (exit 127) when the command does not exist on the remote host
_NOT_FOUND = "failed to run command"
_HOST = re.compile(r"[^\s@/\\'\"`$;&|<>()]+")
_USER = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?")


@dataclass(frozen=True)
class SshTarget:
    """How to reach one host: ``address`` (name or IP; None: the host's own name), the login
    ``user`` (None: ssh's default), ``port`` (None: ssh's default), an ``identity`` key file and
    extra ssh command-line ``options`` (``-o Name=value``, ``-F file``...), and how long
    connecting may take (ssh's ConnectTimeout; None: :data:`DEFAULT_CONNECT_TIMEOUT`)."""

    address: str | None = None
    user: str | None = None
    port: int | None = None
    identity: str | None = None
    options: tuple[str, ...] = ()
    connect_timeout: int | None = None

    def over(self, fallback: SshTarget) -> SshTarget:
        """These settings, each missing one taken from ``fallback``; options: these first (the
        first value ssh reads for a setting wins), then the fallback's."""
        return SshTarget(
            address=self.address or fallback.address,
            user=self.user or fallback.user,
            port=self.port if self.port is not None else fallback.port,
            identity=self.identity or fallback.identity,
            options=(*self.options, *fallback.options),
            connect_timeout=self.connect_timeout or fallback.connect_timeout,
        )


class SshExecutor:
    """Runs each command on ``host`` with ``ssh -o BatchMode=yes -o ConnectTimeout=N [-l user]
    [-p port] [-i key] [options] -- address 'quoted' 'argv'``.

    Results carry the remote argv (what ran there, e.g. ``sudo -n ip addr add ...``); ``transport``
    names the connection (``ssh user@address:port``) for messages.  A program missing on the
    remote host raises CommandNotFoundError naming the host.
    """

    def __init__(
        self,
        host: str,
        target: SshTarget | None = None,
        *,
        inner: Executor | None = None,
        ssh: str = "ssh",
    ) -> None:
        target = target or SshTarget()
        address = target.address or host
        if not _HOST.fullmatch(address) or address.startswith("-"):
            raise UsageError(f"ssh: invalid host address {address!r} (for host {host!r})")
        if target.user is not None and not _USER.fullmatch(target.user):
            raise UsageError(f"ssh: invalid user name {target.user!r} (for host {host!r})")
        if target.port is not None and not 0 < target.port < 65536:
            raise UsageError(f"ssh: port must be 1-65535, not {target.port} (for host {host!r})")
        connect_timeout = target.connect_timeout or DEFAULT_CONNECT_TIMEOUT
        if connect_timeout <= 0:
            raise UsageError(f"ssh: connect timeout must be positive, not {connect_timeout}")
        self.host = host
        self.target = SshTarget(
            address, target.user, target.port, target.identity, target.options, connect_timeout
        )
        self._inner = inner if inner is not None else LocalExecutor()
        self._ssh = ssh
        where = f"{target.user}@{address}" if target.user else address
        self.transport = f"ssh {where}:{target.port or 22}"

    def ssh_argv(self, argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT) -> tuple[str, ...]:
        """The local argv that runs ``argv`` on the host, under a remote ``timeout``."""
        target = self.target
        words = [self._ssh, "-o", "BatchMode=yes", "-o", f"ConnectTimeout={target.connect_timeout}"]
        if target.user:
            words += ["-l", target.user]
        if target.port is not None:
            words += ["-p", str(target.port)]
        if target.identity:
            words += ["-i", target.identity]
        words += target.options
        # The remote backstop fires after the local timeout and its grace: normally the local
        # one reports the timeout; this one ends the command if the connection is gone.
        backstop = math.ceil(timeout + DEFAULT_KILL_GRACE) + 1
        remote = ["timeout", "-k", "1", str(backstop), *argv]
        return (*words, "--", str(target.address), " ".join(shlex.quote(w) for w in remote))

    def run(
        self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, check: bool = True
    ) -> CommandResult:
        argv = as_argv(argv)
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        done = self._inner.run(self.ssh_argv(argv, timeout), timeout=timeout, check=False)
        result = CommandResult(
            argv=argv,
            exit_code=done.exit_code,
            stdout=done.stdout,
            stderr=done.stderr,
            duration=done.duration,
            timed_out=done.timed_out,
        )
        if result.exit_code == 127 and _NOT_FOUND in result.stderr:
            raise CommandNotFoundError(
                f"command not found on {self.host} ({self.transport}): {argv[0]!r}: "
                f"{result.last_line}",
                argv=argv,
                result=result,
            )
        why = self.unreachable(result)
        if check and why is not None:
            raise HostUnreachableError(
                f"cannot reach host {self.host!r} through {self.transport}: {why}",
                host=self.host,
                transport=self.transport,
                argv=argv,
                result=result,
            )
        return result.check() if check else result

    def unreachable(self, result: CommandResult) -> str | None:
        """Why ``result`` never reached the host: ssh's own failure (exit 255: no connection,
        authentication refused, host key changed) or no answer before the timeout."""
        if result.timed_out:
            return f"no answer within {result.duration:.1f} s"
        if result.exit_code == SSH_FAILED:
            return result.last_line or "ssh exited 255"
        return None

    def __repr__(self) -> str:
        return f"SshExecutor({self.host!r}, {self.transport!r})"
