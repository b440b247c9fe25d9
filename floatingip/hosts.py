"""The hosts a manager acts for: reachable, unreachable, or declared dead.

- **Unreachable**: a command could not reach the host: its transport failed (ssh exit 255, a
  network namespace that is gone, an executor whose connection is refused) or the host did not
  answer within ``unreachable_after`` seconds.  Nothing is known of the host then, its VIP may
  still be up, so the manager says so (:class:`HostUnreachableError`, naming the host and the
  transport) and takes nothing elsewhere because of it.
- **Declared dead** (``Manager.declare_dead``; floatingip.dead): the operator or the cluster
  manager asserts the host is fenced (powered off, STONITH confirmed).  Nothing runs there any
  more (:class:`HostDeadError`) until it is declared alive again.

Every host's executor is wrapped in a :class:`GuardedExecutor`, so that every path (rules,
reconcile, the fence's probe, the failsafe, the shell's ``service``) obeys this.  A command to a
host other than the manager's own runs in a worker thread that the caller waits for at most
``unreachable_after`` seconds: a hung host costs the manager's lock that long once, not a command
timeout per command.  Until the hung command returns, commands to that host fail at once; a start
among them keeps the service from being taken on another host (:meth:`Hosts.blocks_take`) until a
probe has read the service's state there again, or the host is declared dead.

A command whose transport gave up on it (timed out, lost connection) may still run on the host
for a while: an executor says how long with ``lingers(timeout)`` (ssh: the remote ``timeout``),
and the host counts as hung that much longer, so nothing lands there after the manager stopped
counting it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from floatingip.commands import DEFAULT_TIMEOUT, CommandResult, Executor, NamespaceExecutor
from floatingip.dad import PROBE_SCRIPT
from floatingip.errors import HostDeadError, HostUnreachableError
from floatingip.results import Event
from floatingip.vocabulary import Action, EventKind

__all__ = [
    "DEFAULT_UNREACHABLE_AFTER",
    "GuardedExecutor",
    "Hosts",
    "lingers",
    "transport_failure",
    "transport_of",
]

logger = logging.getLogger(__name__)

# How long a command to another host may take before the host is reported unreachable (and the
# caller goes on, the command left running to its own timeout in the background).
DEFAULT_UNREACHABLE_AFTER = 5.0
_TAKES = (Action.START, Action.RESTART)
_NETNS_GONE = "Cannot open network namespace"
_SSH_FAILED = 255  # what ssh exits with when it cannot connect (ssh(1))


def expected_seconds(argv: Sequence[str]) -> float:
    """How long ``argv`` takes by design, beyond a command's usual instant: the duplicate
    address probe listens ``--wait`` seconds; arping and the neighbour advertisement sender
    send a packet a second."""
    words = list(argv)
    try:
        if PROBE_SCRIPT in words:
            option = "--advertise" if "--advertise" in words else "--wait"
            return float(words[words.index(option) + 1])
        if any(os.path.basename(word) == "arping" for word in words):
            return float(words[words.index("-c") + 1])
    except (ValueError, IndexError):
        return 0.0
    return 0.0


def transport_of(executor: Executor) -> str:
    """How ``executor`` reaches its host, for messages: its own ``transport`` attribute if it
    has one (a remote executor can say "ssh db1"), else what is known of the built-in ones."""
    described = getattr(executor, "transport", None)
    if isinstance(described, str) and described:
        return described
    if isinstance(executor, NamespaceExecutor):
        return f"network namespace {executor.netns!r} (ip netns exec)"
    return type(executor).__name__


def transport_failure(executor: Executor, result: CommandResult, *, remote: bool) -> str | None:
    """Why ``result`` says the command never reached its host (None: it reached it, whatever
    it did there).  An executor may classify its own results with ``unreachable(result)``."""
    own = getattr(executor, "unreachable", None)
    if callable(own):
        why = own(result)
        return why if isinstance(why, str) and why else None
    if result.timed_out:
        return f"no answer within {result.duration:.1f} s" if remote else None
    argv = result.argv
    if result.exit_code != _SSH_FAILED or not argv:
        return None
    if argv[:3] == ("ip", "netns", "exec") and _NETNS_GONE in result.stderr:
        return result.last_line
    if os.path.basename(argv[0]) == "ssh":
        return result.last_line or "ssh exited 255"
    return None


@dataclass(frozen=True)
class _Stranded:
    """A command that has not returned within ``unreachable_after``."""

    what: str
    since: float
    service: str | None
    takes: bool
    until: float | None = None  # it may still run on the host until then (None: not returned)


def _since(stranded: _Stranded) -> float:
    return stranded.since


def lingers(executor: Executor, timeout: float) -> float:
    """How long a command that ``executor`` gave up on may still run on its host (its own
    ``lingers(timeout)``; 0: it dies with the executor's process, as a local one does)."""
    own = getattr(executor, "lingers", None)
    return float(own(timeout)) if callable(own) else 0.0


class _Call:
    """One command run in a worker thread; ``late`` once the caller stopped waiting."""

    def __init__(self) -> None:
        self.result: CommandResult | None = None
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self.late = False


class Hosts:
    """What the manager knows of each host it acts for (``own``: its own host, whose commands
    are never run in a worker).  ``record`` receives the events; reads are cheap copies."""

    def __init__(self, own: str, unreachable_after: float, record: Callable[[Event], None]) -> None:
        self.own = own
        self.unreachable_after = unreachable_after
        self._record = record
        self._lock = threading.Lock()
        self.dead: dict[str, str] = {}  # host -> why it was declared dead
        self.unreachable: dict[str, str] = {}  # host -> why it could not be reached
        self._stranded: dict[str, dict[_Call, _Stranded]] = {}  # host -> its hung commands
        self._suspect: set[tuple[str, str]] = set()  # (service, host): a start that never returned
        self._acting = threading.local()

    def guard(self, executors: Mapping[str, Executor]) -> dict[str, Executor]:
        return {host: GuardedExecutor(host, executor, self) for host, executor in executors.items()}

    @contextlib.contextmanager
    def acting(self, service: str, action: str) -> Iterator[None]:
        """Commands run meanwhile (in this thread) are ``action`` of ``service``."""
        previous = getattr(self._acting, "what", None)
        self._acting.what = (service, action)
        try:
            yield
        finally:
            self._acting.what = previous

    # -- what the dispatcher asks -------------------------------------------------------------

    def blocks_take(self, service: str, host: str) -> HostUnreachableError | None:
        """Why ``service`` may not be taken on ``host`` now: a start of it on another host, not
        declared dead, has not been seen to finish (its VIP may be up there)."""
        with self._lock:
            others = sorted(h for s, h in self._suspect if s == service and h != host)
            others = [h for h in others if h not in self.dead]
        if not others:
            return None
        other = others[0]
        return HostUnreachableError(
            f"not taking {service} on {host}: its start on {other} has not returned ({other} "
            f"is unreachable), so it may be up there; once {other} is fenced, declare it dead",
            host=other,
            transport="",
        )

    def seen(self, service: str, host: str) -> None:
        """A command read ``service``'s state on ``host``: any start there has finished."""
        if self._suspect:
            with self._lock:
                self._suspect.discard((service, host))

    # -- declarations (floatingip.dead) -----------------------------------------------------

    def declare_dead(self, host: str, reason: str) -> None:
        with self._lock:
            self.dead[host] = reason
            self._suspect = {(s, h) for s, h in self._suspect if h != host}

    def declare_alive(self, host: str) -> None:
        with self._lock:
            self.dead.pop(host, None)

    # -- what the guarded executors report ------------------------------------------------------

    def _before(self, host: str, argv: Sequence[str], transport: str, *, anyway: bool) -> None:
        dead = self.dead.get(host)  # single reads, atomic: no lock on every command's path
        hung = self._stranded.get(host) or {}
        stranded = min(hung.values(), default=None, key=_since)
        if any(s.until is not None for s in hung.values()):
            stranded = self._expire(host)
        if dead is not None and not anyway:
            raise HostDeadError(
                f"host {host!r} is declared dead ({dead}): nothing runs there until it is "
                f"declared alive (Manager.declare_alive({host!r}), the shell's `alive {host}`)",
                host=host,
            )
        if stranded is not None:
            now, what = time.monotonic(), stranded.what
            why = f"{what} sent {now - stranded.since:.0f} s ago has not returned"
            if stranded.until is not None:
                why = f"{what} got no answer: it may run there {stranded.until - now:.1f} s more"
            raise _unreachable(host, transport, why, argv)

    def _expire(self, host: str) -> _Stranded | None:
        """Forget ``host``'s commands that can no longer run there; the oldest left."""
        now = time.monotonic()
        with self._lock:
            hung = self._stranded.get(host, {})
            left = {c: s for c, s in hung.items() if s.until is None or s.until > now}
            self._stranded[host] = left
        return min(left.values(), default=None, key=_since)

    def _linger(self, host: str, argv: Sequence[str], seconds: float) -> None:
        """A command to ``host`` got no answer (timed out, connection lost) and may still run
        there for ``seconds``: the host counts as hung until then."""
        call = _Call()
        self._strand(host, call, argv, until=time.monotonic() + seconds)

    def _reached(self, host: str) -> None:
        if host in self.unreachable:
            with self._lock:
                why = self.unreachable.pop(host, None)
            if why is not None:
                self._say(f"host {host} answers again (it was unreachable: {why})", ok=True)

    def _lost(self, host: str, why: str) -> None:
        with self._lock:
            new = self.unreachable.get(host) != why
            self.unreachable[host] = why
        if new:
            self._say(f"host {host} is unreachable: {why}", ok=False)

    def _strand(
        self, host: str, call: _Call, argv: Sequence[str], until: float | None = None
    ) -> bool:
        """The caller stops waiting for ``call``; False if it finished meanwhile."""
        service, action = getattr(self._acting, "what", None) or (None, "")
        what = f"{service} {action}" if service else f"`{shlex.join(argv)}`"
        with self._lock:
            if call.finished.is_set():
                return False
            call.late = True
            takes = action in _TAKES
            hung = _Stranded(what, time.monotonic(), service, takes, until)
            self._stranded[host] = {**self._stranded.get(host, {}), call: hung}
            if takes and service is not None:
                self._suspect.add((service, host))
        return True

    def _answered_late(self, host: str, call: _Call, late: str | None, linger: float) -> None:
        with self._lock:
            hung = self._stranded.get(host, {})
            stranded = hung.get(call)
            left = {other: s for other, s in hung.items() if other is not call}
            if late is not None and linger > 0 and stranded is not None:
                # given up on, not ended: it may still run there that long
                left[call] = _Stranded(
                    stranded.what, stranded.since, stranded.service, stranded.takes,
                    time.monotonic() + linger,
                )  # fmt: skip
            self._stranded[host] = left
            still_hung = bool(left)
        waited = time.monotonic() - stranded.since if stranded else 0.0
        what = stranded.what if stranded else "a command"
        if late is None:
            if not still_hung:
                with self._lock:
                    self.unreachable.pop(host, None)
            outcome = "ok" if call.result is not None and call.result.ok else "failed"
            self._say(f"host {host} answered {waited:.1f} s late: {what} {outcome}", ok=True)
        else:
            self._lost(host, late)

    def _say(self, message: str, *, ok: bool) -> None:
        (logger.info if ok else logger.warning)("%s", message)
        self._record(Event(kind=EventKind.WARNING, message=message, ok=ok))


def _unreachable(
    host: str, transport: str, why: str, argv: Sequence[str], result: CommandResult | None = None
) -> HostUnreachableError:
    return HostUnreachableError(
        f"cannot reach host {host!r} through {transport}: {why}; its VIP may still be up "
        f"there: nothing is taken elsewhere because of that; once {host} is fenced (powered "
        f"off), declare it dead (Manager.declare_dead({host!r}), the shell's `dead {host}`)",
        host=host,
        transport=transport,
        argv=argv,
        result=result,
    )


class GuardedExecutor:
    """``inner``, for ``host``: refuses while the host is declared dead or a command to it has
    not returned, bounds the wait for another host's answer, and turns a transport failure into
    :class:`HostUnreachableError`."""

    def __init__(self, host: str, inner: Executor, hosts: Hosts) -> None:
        self.host = host
        self.inner = inner
        self._hosts = hosts
        self.transport = transport_of(inner)

    @property
    def runs_as_root(self) -> bool | None:
        """The inner executor's say on its host's privilege (floatingip.privilege)."""
        says = getattr(self.inner, "runs_as_root", None)
        return says if isinstance(says, bool) else None

    def run(
        self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, check: bool = True
    ) -> CommandResult:
        return self._run(argv, timeout, check, anyway=False)

    def run_anyway(
        self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, check: bool = True
    ) -> CommandResult:
        """Run even on a host declared dead (declaring it alive probes it first)."""
        return self._run(argv, timeout, check, anyway=True)

    def _run(
        self, argv: Sequence[str], timeout: float, check: bool, *, anyway: bool
    ) -> CommandResult:
        hosts = self._hosts
        hosts._before(self.host, argv, self.transport, anyway=anyway)
        remote = self.host != hosts.own
        if remote and hosts.unreachable_after > 0:
            result = self._bounded(argv, timeout)
        else:
            result = self._direct(argv, timeout)
        why = transport_failure(self.inner, result, remote=remote)
        if why is not None:
            if remote and lingers(self.inner, timeout) > 0:
                hosts._linger(self.host, argv, lingers(self.inner, timeout))
            hosts._lost(self.host, why)
            raise _unreachable(self.host, self.transport, why, result.argv, result)
        hosts._reached(self.host)
        return result.check() if check else result

    def _direct(self, argv: Sequence[str], timeout: float) -> CommandResult:
        try:
            return self.inner.run(argv, timeout=timeout, check=False)
        except OSError as exc:  # a remote executor's connection refused, say
            self._hosts._lost(self.host, str(exc))
            raise _unreachable(self.host, self.transport, str(exc), argv) from exc

    def _bounded(self, argv: Sequence[str], timeout: float) -> CommandResult:
        call = _Call()
        worker = threading.Thread(  # in the caller's context: a process.Cancel reaches it
            target=contextvars.copy_context().run, args=(self._work, call, argv, timeout),
            name=f"floatingip-{self.host}", daemon=True,
        )  # fmt: skip
        worker.start()
        patience = self._hosts.unreachable_after + expected_seconds(argv)
        if not call.finished.wait(patience) and self._hosts._strand(self.host, call, argv):
            why = f"no answer within {patience:g} s (the command goes on, to its timeout)"
            self._hosts._lost(self.host, why)
            raise _unreachable(self.host, self.transport, why, argv)
        if call.error is not None:
            raise call.error
        assert call.result is not None
        return call.result

    def _work(self, call: _Call, argv: Sequence[str], timeout: float) -> None:
        try:
            call.result = self._direct(argv, timeout)
        except BaseException as exc:  # handed to the caller's thread
            call.error = exc
        with self._hosts._lock:
            call.finished.set()
            late = call.late
        if late:
            why = None
            if call.result is not None:
                why = transport_failure(self.inner, call.result, remote=True)
            elif isinstance(call.error, HostUnreachableError):
                why = str(call.error)
            self._hosts._answered_late(self.host, call, why, lingers(self.inner, timeout))
