"""Gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6) once a VIP is added, in
the background: they take a second per packet, and the VIP already answers.  A failure is a
warning (clients learn the move when their neighbour cache entry expires), never a failed start.

An announcement starts as soon as the add succeeded, while the verify runs (floatingip.actions):
if the verify then fails, the start is undone, or the VIP is stopped, dropped or given up there
(its host declared dead), it is cancelled (its command is killed, as at a timeout), so that
nothing goes on telling clients that this host has the VIP."""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable, Sequence

from floatingip.actions import last_line
from floatingip.commands import Executor
from floatingip.errors import FloatingIPError
from floatingip.process import Cancel
from floatingip.results import Event, History
from floatingip.service import ServiceDefinition
from floatingip.vocabulary import Action, EventKind

__all__ = ["Announcer", "CancelAnnouncement", "StartAnnouncements"]

CancelAnnouncement = Callable[[str], None]  # stops an announcement; the argument says why


class Announcer:
    """Sends each announcement in a thread of its own and records how it went in ``history``."""

    def __init__(self, history: History) -> None:
        self._history = history
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._running: dict[tuple[str, str], set[Cancel]] = {}  # (service, host): being sent

    def announce(
        self,
        service: ServiceDefinition,
        argvs: Sequence[tuple[str, ...]],
        executor: Executor,
        host: str,
    ) -> CancelAnnouncement:
        """Send ``argvs`` (arping, dad.py --advertise) through ``executor`` for ``service``'s
        VIP on ``host``, at once (a dual-stack VIP's two announcements do not wait for each
        other); what stops them."""
        cancels = [self._start(service, argv, executor, host) for argv in argvs]

        def cancel(why: str) -> None:
            for each in cancels:
                each.cancel(why)

        return cancel

    def for_action(
        self, service: ServiceDefinition, action: str, executor: Executor, host: str
    ) -> StartAnnouncements:
        """What ``action`` of ``service`` on ``host`` announces through once it added the VIP
        (floatingip.actions' ``announce``), and cancels if the start is undone.  A stop (or a
        restart) first stops what is still being sent for it there: its remaining packets
        would pull clients back to a host that no longer has the VIP, perhaps after another
        host took it."""
        if action in (Action.STOP, Action.RESTART):
            self.stop(service.name, host, f"{service.name} {action} on {host}")
        return StartAnnouncements(self, service, executor, host)

    def stop(self, service: str, host: str, why: str) -> None:
        """Stop what is still being sent for ``service``'s VIP on ``host`` (``why``: in the
        history).  Every path that removes a VIP there or gives it up calls this first: a stop
        (:meth:`for_action`), a drop, a host declared dead or alive (floatingip.failsafe,
        floatingip.dead)."""
        with self._lock:
            running = list(self._running.get((service, host), ()))
        for cancel in running:
            cancel.cancel(why)

    def _start(
        self, service: ServiceDefinition, argv: tuple[str, ...], executor: Executor, host: str
    ) -> Cancel:
        vip = service.vip
        ipv6 = "--advertise" in argv
        count = (vip.na_count if ipv6 else vip.arp_count) if vip is not None else service.arp_count
        what = "neighbour advertisements" if ipv6 else "gratuitous ARP"

        cancel = Cancel()
        key = (service.name, host)

        def announce() -> None:
            where = f"{service.name} on {host}"
            try:
                with cancel.applies():
                    result = executor.run(argv, timeout=count + 5.0, check=False)
            except FloatingIPError as exc:
                message, ok = f"{where}: {what} not sent: {exc}", False
            else:
                if cancel.cancelled:  # what it sent is void: the start was undone
                    message, ok = f"{where}: {what} stopped ({cancel.why})", False
                elif result.ok:
                    message, ok = f"{where}: {what} sent ({shlex.join(argv)})", True
                else:
                    failure = last_line(result, "no output")
                    message, ok = f"{where}: {what} failed: {failure}", False
            finally:
                with self._lock:
                    self._running.get(key, set()).discard(cancel)
                cancel.close()
            kind = EventKind.ANNOUNCE if ok else EventKind.WARNING
            self._history.record(Event(kind=kind, message=message, ok=ok, service=service.name))

        thread = threading.Thread(
            target=announce, name=f"floatingip-arp-{service.name}", daemon=True
        )
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
            self._running.setdefault(key, set()).add(cancel)
        thread.start()
        return cancel

    def wait(self, timeout: float | None) -> bool:
        """Wait for gratuitous ARP still being sent; False if some is still running at timeout."""
        with self._lock:
            threads = list(self._threads)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)


class StartAnnouncements:
    """The announcements one start made: started through it, all cancelled by :meth:`cancel`."""

    def __init__(
        self, announcer: Announcer, service: ServiceDefinition, executor: Executor, host: str
    ) -> None:
        self._announcer = announcer
        self._where = (service, executor, host)
        self._cancels: list[CancelAnnouncement] = []

    def __call__(self, argvs: tuple[tuple[str, ...], ...]) -> CancelAnnouncement:
        service, executor, host = self._where
        self._cancels.append(self._announcer.announce(service, argvs, executor, host))
        return self._cancels[-1]

    def cancel(self, why: str) -> None:
        for cancel in self._cancels:
            cancel(why)
