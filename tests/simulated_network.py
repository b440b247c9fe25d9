"""A network of simulated hosts for model-based tests of the manager and the rules.

Each host keeps its set of addresses and answers the commands of a built-in VIP service the way
the real tools do (``ip addr add`` of a present address fails, duplicate address detection sees
the other hosts).  Failures can be injected.  The real thing is tested on network namespaces
(tests/integration); this one lets a property test run thousands of events in seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from floatingip import CommandResult
from floatingip.commands import DEFAULT_TIMEOUT
from floatingip.dad import FREE, IN_USE, PROBE_SCRIPT


class SimulatedNetwork:
    def __init__(self, hosts: Sequence[str]) -> None:
        self.addresses: dict[str, set[str]] = {host: set() for host in hosts}
        self.failures: dict[str, int] = dict.fromkeys(hosts, 0)
        self.changes: list[tuple[str, str, str]] = []  # (host, add|del, address)
        self.failed = 0  # injected failures that happened
        self._lock = threading.Lock()

    def executor(self, host: str) -> SimulatedHost:
        return SimulatedHost(self, host)

    def holders(self, address: str) -> list[str]:
        with self._lock:
            return sorted(host for host, held in self.addresses.items() if address in held)

    def fail_next(self, host: str, count: int) -> None:
        with self._lock:
            self.failures[host] += count

    @property
    def faults_pending(self) -> bool:
        return any(self.failures.values())


class SimulatedHost:
    """An Executor for one simulated host."""

    def __init__(self, network: SimulatedNetwork, host: str) -> None:
        self.network = network
        self.host = host

    def run(
        self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, check: bool = True
    ) -> CommandResult:
        full = tuple(argv)
        words = list(full[2:] if full[:2] == ("sudo", "-n") else full)
        result = self._answer(full, words)
        return result.check() if check else result

    def _answer(self, full: tuple[str, ...], words: list[str]) -> CommandResult:
        network, host = self.network, self.host
        with network._lock:
            mine = network.addresses[host]
            if words[:4] == ["ip", "-o", "-4", "addr"]:
                lines = [f"2: eth0    inet {address} scope global eth0" for address in sorted(mine)]
                return CommandResult(full, 0, stdout="\n".join(lines) + "\n")
            if PROBE_SCRIPT in words:
                address = words[-1]
                others = [h for h, held in network.addresses.items() if h != host and any(
                    a.split("/")[0] == address for a in held)]  # fmt: skip
                if others:
                    return CommandResult(
                        full, IN_USE, stdout=f"{address} is in use on eth0 by {others[0]}\n"
                    )
                return CommandResult(full, FREE, stdout=f"{address} is free on eth0\n")
            if words[0] == "arping":
                return CommandResult(full, 0)
            if network.failures[host]:
                network.failures[host] -= 1
                network.failed += 1
                return CommandResult(full, 2, stderr="injected failure\n")
            if words[:3] == ["ip", "addr", "add"]:
                if words[3] in mine:
                    return CommandResult(full, 2, stderr="RTNETLINK answers: File exists\n")
                mine.add(words[3])
                network.changes.append((host, "add", words[3]))
                return CommandResult(full, 0)
            if words[:3] == ["ip", "addr", "del"]:
                if words[3] not in mine:
                    return CommandResult(
                        full, 2, stderr="RTNETLINK answers: Cannot assign requested address\n"
                    )
                mine.remove(words[3])
                network.changes.append((host, "del", words[3]))
                return CommandResult(full, 0)
        raise AssertionError(f"the simulated network does not know {full}")
