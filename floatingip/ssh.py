"""Running commands on another host with the system's OpenSSH client.

``ssh`` rather than a Python ssh library: the user's ssh configuration, keys, known_hosts,
agent and ControlMaster apply, as they do to MHA's own ssh and to every hand-written VIP script.

ssh joins the words after the host into one string that the remote account's shell parses, so
each word is quoted with :func:`shlex.quote`: the remote program receives exactly the local argv
(spaces, quotes, ``;``, ``$(...)`` and newlines stay literal).  ``BatchMode=yes``: ssh never
prompts (for a password, a passphrase or a new host key), it fails.  The command's timeout kills
the local ssh (and it dies with its manager, like every command, :mod:`floatingip.process`);
sshd does not signal a command without a terminal when the connection drops, so the remote
command also runs under coreutils' ``timeout`` with the same limit, ``timeout -k 1
ceil(TIMEOUT)``, counted from its start on the host, which is before the local ssh returns (it
cannot start once the connection is gone): a command over ssh that timed out or lost its
connection ends on the host at most ``ceil(TIMEOUT) + 1`` s after the local ssh returned, and
:meth:`SshExecutor.lingers` tells floatingip.hosts to count the host hung that long (+1 s).
ssh exits 255 when it cannot connect or authenticate: that result is "unreachable"
(floatingip.hosts), not a failed command.

The privileged VIP commands run on the host as the ssh login, so that login decides sudo
(:attr:`SshExecutor.runs_as_root`): root runs them as they are, any other account through
``sudo -n``.  The login is ``user`` if given, else the one ssh's configuration resolves
(``ssh -G``: its ``User``, else the local account's name).
"""

from __future__ import annotations

import functools
import logging
import math
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from floatingip.commands import (
    DEFAULT_TIMEOUT,
    CommandResult,
    Executor,
    LocalExecutor,
    as_argv,
    result_as,
)
from floatingip.errors import (
    CommandNotFoundError,
    FloatingIPError,
    HostUnreachableError,
    UsageError,
)

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "SSH_FAILED", "SshExecutor", "SshTarget"]

logger = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT = 5  # seconds; MHA's ssh_connection_timeout default
SSH_FAILED = 255  # what ssh exits with when it cannot connect or authenticate (ssh(1))
# what GNU timeout prints (exit 127) when the command does not exist on the remote host
_NOT_FOUND = "failed to run command"
_KILL_AFTER = 1  # seconds between the remote timeout's SIGTERM and its SIGKILL (timeout -k)
# after the local ssh returned: a command sent just before it was killed may start that late
_START_MARGIN = 1.0
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
        # The remote limit counts from the command's start there, after ssh connected: the
        # local timeout (counted before) fires first and reports it; the remote one ends the
        # command if the connection is gone, within lingers() of the local ssh's return.
        remote = ["timeout", "-k", str(_KILL_AFTER), str(math.ceil(timeout)), *argv]
        return (*words, "--", str(target.address), " ".join(shlex.quote(w) for w in remote))

    def lingers(self, timeout: float) -> float:
        """How long after the local ssh returned a command run with ``timeout`` may still run
        on the host, when ssh timed out or lost the connection (it cannot have started later
        than ssh's return, give or take a packet in flight)."""
        return math.ceil(timeout) + _KILL_AFTER + _START_MARGIN

    @property
    def runs_as_root(self) -> bool:
        """Whether commands run as root on the host (the ssh login is root): then the VIP
        commands need no sudo; any other login runs them through ``sudo -n``."""
        return self.login == "root"

    @functools.cached_property
    def login(self) -> str | None:
        """The account ssh logs in as: ``user``, else what ``ssh -G`` resolves (the ssh
        configuration's ``User``, else the local account's name); None if ssh cannot say."""
        if self.target.user:
            return self.target.user
        words = self.ssh_argv(["true"])
        config = (self._ssh, "-G", *words[1 : words.index("--")], str(self.target.address))
        try:
            done = self._inner.run(config, timeout=DEFAULT_TIMEOUT, check=False)
        except FloatingIPError as exc:
            logger.warning("%s: cannot tell the ssh login: %s", self.host, exc)
            return None
        for line in done.stdout.splitlines():
            key, _, value = line.partition(" ")
            if key == "user" and done.ok:
                return value.strip()
        logger.warning("%s: `ssh -G` does not say the login: %s", self.host, done.last_line)
        return None

    def run(
        self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, check: bool = True
    ) -> CommandResult:
        argv = as_argv(argv)
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        done = self._inner.run(self.ssh_argv(argv, timeout), timeout=timeout, check=False)
        result = result_as(argv, done)
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
