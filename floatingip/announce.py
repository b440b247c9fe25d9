"""Gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6) after a VIP is taken, in
the background: they take a second per packet, and the VIP already answers.  A failure is a
warning (clients learn the move when their neighbour cache entry expires), never a failed start."""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Sequence

from floatingip.actions import last_line
from floatingip.commands import Executor
from floatingip.errors import FloatingIPError
from floatingip.results import Event, History
from floatingip.service import ServiceDefinition
from floatingip.vocabulary import EventKind

__all__ = ["Announcer"]


class Announcer:
    """Sends each announcement in a thread of its own and records how it went in ``history``."""

    def __init__(self, history: History) -> None:
        self._history = history
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def announce(
        self,
        service: ServiceDefinition,
        argvs: Sequence[tuple[str, ...]],
        executor: Executor,
        host: str,
    ) -> None:
        """Send ``argvs`` (arping, dad.py --advertise) through ``executor`` for ``service``'s
        VIP on ``host``, at once (a dual-stack VIP's two announcements do not wait for each
        other)."""
        for argv in argvs:
            self._start(service, argv, executor, host)

    def _start(
        self, service: ServiceDefinition, argv: tuple[str, ...], executor: Executor, host: str
    ) -> None:
        vip = service.vip
        ipv6 = "--advertise" in argv
        count = (vip.na_count if ipv6 else vip.arp_count) if vip is not None else service.arp_count
        what = "neighbour advertisements" if ipv6 else "gratuitous ARP"

        def announce() -> None:
            where = f"{service.name} on {host}"
            try:
                result = executor.run(argv, timeout=count + 5.0, check=False)
            except FloatingIPError as exc:
                message, ok = f"{where}: {what} not sent: {exc}", False
            else:
                if result.ok:
                    message, ok = f"{where}: {what} sent ({shlex.join(argv)})", True
                else:
                    failure = last_line(result, "no output")
                    message, ok = f"{where}: {what} failed: {failure}", False
            kind = EventKind.ANNOUNCE if ok else EventKind.WARNING
            self._history.record(Event(kind=kind, message=message, ok=ok, service=service.name))

        thread = threading.Thread(
            target=announce, name=f"floatingip-arp-{service.name}", daemon=True
        )
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def wait(self, timeout: float | None) -> bool:
        """Wait for gratuitous ARP still being sent; False if some is still running at timeout."""
        with self._lock:
            threads = list(self._threads)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)
