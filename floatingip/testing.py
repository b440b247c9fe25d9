"""Test doubles for testing rule files and embeddings without touching a network.

- :class:`RecordingExecutor`: one fake host.  It records each argv in ``calls`` and answers the
  commands of a VIP service (``ip addr add/del/show``, ``ifconfig ALIAS ...``, the duplicate
  address probe, ``arping``) as a host would, keeping the addresses they would configure in
  ``addresses``; any other command succeeds with no output.
- :class:`FakeNetwork`: several such hosts (``network.executor("db1")``), whose duplicate address
  probes see each other's addresses, with failures that can be injected and a log of changes.
- :func:`dry_run_responder`: a ``respond`` that prints each command instead of running it
  (``floatingip shell --dry-run``).
- :func:`write_cluster_home`: a cluster home with the service and datasource files given.
- :func:`wedge_manager`: a thread that holds a Manager's lock until released (a wedged change).

The real commands are tested on network namespaces (:mod:`floatingip.sandbox`); these answer
like them in microseconds, so a property test can run thousands of events.
"""

from __future__ import annotations

import functools
import ipaddress
import shlex
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableSet, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from floatingip.commands import DEFAULT_TIMEOUT, CommandResult, as_argv, split_sudo
from floatingip.dad import FREE, IN_USE, PROBE_SCRIPT

if TYPE_CHECKING:
    from floatingip.manager import Manager

__all__ = [
    "FakeHost",
    "FakeNetwork",
    "RecordingExecutor",
    "Responder",
    "dry_run_responder",
    "wedge_manager",
    "write_cluster_home",
]

Responder = Callable[[tuple[str, ...]], CommandResult]
Interfaces = dict[str, dict[str, str]]  # interface -> {address/prefix: label}
DEFAULT_INTERFACE = "eth0"


def dry_run_responder(out: IO[str], *, host: str | None = None) -> Responder:
    """For RecordingExecutor: print each argv (and the host it is for) instead of running it,
    and report success."""
    tag = f"[dry-run on {host}]" if host is not None else "[dry-run]"

    def respond(argv: tuple[str, ...]) -> CommandResult:
        out.write(f"{tag} {shlex.join(argv)}\n")
        return CommandResult(argv, 0)

    return respond


def write_cluster_home(
    root: Path,
    *,
    services: Mapping[str, str],
    datasources: Mapping[str, str],
    cluster: str = "demo",
) -> Path:
    """``root/cluster-home`` with cluster ``cluster``: ``service/NAME.properties`` and
    ``datasource/NAME.properties`` with the texts given by name; directories 0755, files 0644,
    as root's configuration must be."""
    home = root / "cluster-home"
    where = home / "conf" / "cluster" / cluster
    for kind, files in (("service", services), ("datasource", datasources)):
        (where / kind).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (where / kind / f"{name}.properties").write_text(text, encoding="utf-8")
    for path in [home, *home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return home


def _after(words: Sequence[str], key: str, default: str = "") -> str:
    """The word that follows ``key`` in ``words``, or ``default``."""
    if key in words[:-1]:
        return words[words.index(key) + 1]
    return default


def _ip_addr_verb(words: Sequence[str]) -> str | None:
    """For ``ip [options] addr|address VERB ...``: VERB ("" for none); None for another command."""
    for index, word in enumerate(words):
        if word in ("addr", "address"):
            return words[index + 1] if index + 1 < len(words) else ""
    return None


@functools.lru_cache(maxsize=64)
def _prefix_of(netmask: str) -> int:
    return ipaddress.IPv4Network(f"0.0.0.0/{netmask}").prefixlen


def _command_words(argv: tuple[str, ...]) -> tuple[str, ...]:
    """The command ``argv`` runs: without ``sudo -n`` (the common case, kept fast) or, through
    split_sudo, any other sudo options."""
    if argv[0] != "sudo":
        return argv
    if len(argv) > 2 and argv[1] == "-n" and not argv[2].startswith("-"):
        return argv[2:]
    split = split_sudo(argv)
    return split[1] if split is not None else argv


class _HostAddresses(MutableSet[str]):
    """The ``address/prefix`` strings one host holds, on any interface (a live view)."""

    def __init__(self, network: FakeNetwork, host: str) -> None:
        self._network, self._host = network, host

    def _interfaces(self) -> Interfaces:
        return self._network.interfaces[self._host]

    def __contains__(self, address: object) -> bool:
        return any(address in on for on in self._interfaces().values())

    def __iter__(self) -> Iterator[str]:
        return iter(sorted({a for on in self._interfaces().values() for a in on}))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def add(self, address: str) -> None:
        """Put ``address`` on eth0 (without running a command: no change is logged)."""
        self._interfaces().setdefault(DEFAULT_INTERFACE, {})[address] = DEFAULT_INTERFACE

    def discard(self, address: str) -> None:
        for on in self._interfaces().values():
            on.pop(address, None)

    def __repr__(self) -> str:
        return f"{{{', '.join(map(repr, self))}}}" if len(self) else "set()"


class FakeNetwork:
    """Hosts that answer a VIP service's commands as real ones would.

    ``addresses[host]`` is the set of ``address/prefix`` a host holds (add to it to start a test
    with a VIP already held); ``interfaces[host]`` the same by interface, with labels.
    ``changes`` logs each ``(host, "add" | "del", address)`` a command made; ``fail_next(host, n)``
    makes the next ``n`` commands on ``host`` that would change something fail (queries still
    answer).  ``strict``: a command the fake does not know raises AssertionError instead of
    succeeding with no output.
    """

    def __init__(self, hosts: Iterable[str], *, strict: bool = False) -> None:
        self.interfaces: dict[str, Interfaces] = {host: {} for host in hosts}
        self.addresses = {host: _HostAddresses(self, host) for host in self.interfaces}
        self.failures: dict[str, int] = dict.fromkeys(self.interfaces, 0)
        self.changes: list[tuple[str, str, str]] = []
        self.failed = 0  # injected failures that happened
        self.strict = strict
        self.lock = threading.RLock()

    def executor(self, host: str, respond: Responder | None = None) -> FakeHost:
        """An Executor for ``host``; with ``respond``, that decides every answer instead."""
        if host not in self.interfaces:
            raise ValueError(f"no host {host!r} in this network: {sorted(self.interfaces)}")
        return FakeHost(self, host, respond)

    def holders(self, address: str) -> Sequence[str]:
        """The hosts that hold ``address`` (``address/prefix``, as the commands give it)."""
        with self.lock:
            return sorted(host for host, held in self.addresses.items() if address in held)

    def fail_next(self, host: str, count: int) -> None:
        with self.lock:
            self.failures[host] += count

    @property
    def faults_pending(self) -> bool:
        return any(self.failures.values())

    # -- the emulation -------------------------------------------------------------------

    def answer(self, host: str, argv: tuple[str, ...]) -> CommandResult:
        """What ``host`` would answer to ``argv``, and the change it would make."""
        words = _command_words(argv)
        program = words[0].rpartition("/")[2] if words else ""
        verb = _ip_addr_verb(words) if program == "ip" else None
        with self.lock:
            on = self.interfaces[host]
            if verb in ("", "show", "list"):
                return CommandResult(argv, 0, stdout=self._show(on, _after(words, "dev")))
            if PROBE_SCRIPT in words:
                return self._probe(host, argv, words)
            elif program == "arping":
                return CommandResult(argv, 0)
            elif program == "ifconfig" and len(words) == 2:
                return CommandResult(argv, 0, stdout=self._alias_status(on, words[1]))
            if self.failures[host]:
                self.failures[host] -= 1
                self.failed += 1
                return CommandResult(argv, 2, stderr="injected failure\n")
            if verb in ("add", "del"):
                return self._ip_addr_change(host, argv, verb, words)
            if program == "ifconfig" and len(words) >= 3:
                self._set_alias(host, words)
                return CommandResult(argv, 0)
        if self.strict:
            raise AssertionError(f"the fake network does not know {shlex.join(argv)}")
        return CommandResult(argv, 0)

    def _change(self, host: str, verb: str, address: str) -> None:
        self.changes.append((host, verb, address))

    @staticmethod
    def _show(on: Interfaces, interface: str) -> str:
        if interface:
            on.setdefault(interface, {})
        shown = [interface] if interface else sorted(on)
        return "".join(
            f"2: {name}    inet {address} scope global {label}\n"
            for name in shown
            for address, label in on[name].items()
        )

    def _probe(self, host: str, argv: tuple[str, ...], words: Sequence[str]) -> CommandResult:
        """The duplicate address probe (floatingip/dad.py): do other hosts hold the addresses
        (both of a dual-stack VIP)?  Its ``--advertise`` (IPv6 announcements) succeeds."""
        interface = _after(words, "--interface", DEFAULT_INTERFACE)
        if "--advertise" in words:
            return CommandResult(argv, FREE, stdout=f"sent advertisements for {words[-1]}\n")
        addresses = words[words.index("--wait") + 2 :] if "--wait" in words else words[-1:]
        taken = [
            f"{address} is in use on {interface} by {other}\n"
            for address in addresses
            for other, held in self.addresses.items()
            if other != host and any(a.split("/")[0] == address for a in held)
        ]
        if taken:
            return CommandResult(argv, IN_USE, stdout=taken[0])
        verb = "is" if len(addresses) == 1 else "are"
        free = f"{', '.join(addresses)} {verb} free on {interface}\n"
        return CommandResult(argv, FREE, stdout=free)

    def _ip_addr_change(
        self, host: str, argv: tuple[str, ...], verb: str, words: Sequence[str]
    ) -> CommandResult:
        address, interface = _after(words, verb), _after(words, "dev")
        if not address or not interface:
            return CommandResult(argv, 1, stderr='Not enough information: "dev" is required.\n')
        on = self.interfaces[host].setdefault(interface, {})
        if verb == "add":
            if address in on:
                return CommandResult(argv, 2, stderr="Error: ipv4: Address already assigned.\n")
            on[address] = _after(words, "label", interface)
        elif on.pop(address, None) is None:
            return CommandResult(argv, 2, stderr="Error: ipv4: Address not found.\n")
        self._change(host, verb, address)
        return CommandResult(argv, 0)

    @staticmethod
    def _alias_status(on: Interfaces, label: str) -> str:
        held = on.get(label.split(":", 1)[0], {})
        shown = [f"        inet {a.split('/')[0]}" for a, owner in held.items() if owner == label]
        return "\n".join([f"{label}: flags=4163<UP>", *shown]) + "\n"

    def _set_alias(self, host: str, words: Sequence[str]) -> None:
        """``ifconfig ALIAS ADDRESS [netmask MASK] [up]`` or ``ifconfig ALIAS down``."""
        label = words[1]
        on = self.interfaces[host].setdefault(label.split(":", 1)[0], {})
        for address in [a for a, owner in on.items() if owner == label]:
            del on[address]  # an alias holds one address: setting or downing it drops the old
            self._change(host, "del", address)
        if words[2] != "down":
            address = f"{words[2]}/{_prefix_of(_after(words, 'netmask', '255.255.255.0'))}"
            on[address] = label
            self._change(host, "add", address)


class FakeHost:
    """An Executor for one host of a :class:`FakeNetwork`; records each argv in ``calls``.

    ``respond``, if given, decides every answer alone (a failure, say) and the host changes
    nothing.  ``addresses`` is this host's ``{interface: {address/prefix: label}}``.
    """

    def __init__(self, network: FakeNetwork, host: str, respond: Responder | None = None) -> None:
        self.network = network
        self.host = host
        self.calls: list[tuple[str, ...]] = []
        self._respond = respond

    @property
    def addresses(self) -> Interfaces:
        return self.network.interfaces[self.host]

    @addresses.setter
    def addresses(self, interfaces: Interfaces) -> None:
        self.network.interfaces[self.host] = interfaces

    def run(
        self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, check: bool = True
    ) -> CommandResult:
        if type(argv) is not tuple or not argv:  # what the Manager passes is already one
            argv = as_argv(argv)
        with self.network.lock:
            self.calls.append(argv)
            if self._respond is None:
                result = self.network.answer(self.host, argv)
        if self._respond is not None:  # outside the lock: it may block, or run other commands
            result = self._respond(argv)
        return result.check() if check else result


class RecordingExecutor(FakeHost):
    """One fake host (see :class:`FakeHost`), for testing rule files: give it to a Manager and
    check ``calls`` and ``addresses``."""

    def __init__(self, respond: Responder | None = None) -> None:
        super().__init__(FakeNetwork(["localhost"]), "localhost", respond)


def wedge_manager(manager: Manager) -> threading.Event:
    """Hold ``manager``'s lock in a thread of its own until the returned event is set: what a
    consequence or a command that never returns does to every other change (the agent's
    watchdog must then stop pinging).  Returns at once, even while the lock is busy."""
    release = threading.Event()

    def hold() -> None:
        with manager._lock:
            release.wait()

    threading.Thread(target=hold, name="floatingip-wedge", daemon=True).start()
    return release
