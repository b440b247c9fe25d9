"""systemd's service notification protocol (sd_notify(3)): ``READY=1``, ``STATUS=...``,
``STOPPING=1``, ``WATCHDOG=1`` as datagrams to the AF_UNIX socket named by ``$NOTIFY_SOCKET``.

A standalone implementation, as sd_notify(3)'s notes invite: the protocol is one datagram per
message, and the libraries for it either wrap libsystemd in C (systemd-python, cysystemd: a
compiler and libsystemd-dev to install) or have had no release since 2017 (sdnotify).  A path
socket (``/run/systemd/notify``) and an abstract one (``@name``) are both supported; an abstract
socket lives in a network namespace, so a receiver must bind it in the sender's.

Sending never blocks and never raises: a lost notification must not stop the agent.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import MutableMapping

__all__ = ["Notifier"]

logger = logging.getLogger(__name__)

_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class Notifier:
    """Sends notifications to ``address`` (None: nothing is sent)."""

    def __init__(self, address: str | None, *, watchdog_usec: int | None = None) -> None:
        self.address: str | bytes | None = None
        self.watchdog_usec = watchdog_usec
        self._socket: socket.socket | None = None
        self._failed = False
        if not address:
            return
        if address.startswith("@"):  # abstract: a leading NUL byte instead of the @
            self.address = b"\0" + address[1:].encode()
        elif address.startswith("/"):
            self.address = address
        else:
            logger.warning("NOTIFY_SOCKET %r is not a socket path or @name: not notifying", address)
            return
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_environment(cls, environ: MutableMapping[str, str] | None = None) -> Notifier:
        """The notifier systemd set up for this process, taken out of the environment so that
        the commands it runs do not inherit it (sd_notify's ``unset_environment``)."""
        environ = os.environ if environ is None else environ
        address, usec, pid = (environ.pop(name, None) for name in _VARIABLES)
        watchdog: int | None = None
        if usec is not None and (pid is None or pid == str(os.getpid())):
            try:
                watchdog = int(usec) if int(usec) > 0 else None
            except ValueError:
                logger.warning("WATCHDOG_USEC %r is not a number: no watchdog pings", usec)
        return cls(address, watchdog_usec=watchdog)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half the watchdog's timeout), None without one."""
        if self._socket is None or self.watchdog_usec is None:
            return None
        return self.watchdog_usec / 2e6

    def send(self, *lines: str) -> bool:
        """Send ``KEY=VALUE`` lines as one datagram; False if it could not be sent."""
        if self._socket is None or self.address is None:
            return False
        message = "\n".join(line.replace("\n", " ") for line in lines).encode()
        try:
            self._socket.sendto(message, socket.MSG_DONTWAIT, self.address)
        except OSError as exc:
            # once at warning (a gone or full socket), then at debug: never per ping
            level = logging.DEBUG if self._failed else logging.WARNING
            logger.log(level, "cannot notify systemd at %r: %s", self.address, exc)
            self._failed = True
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def stopping(self, status: str) -> bool:
        return self.send("STOPPING=1", f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
