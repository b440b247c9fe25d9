"""``floatingip status``: is every VIP where the facts say it should be?  A health check.

The facts put a service's VIP on the host of the ONLINE master (the shipped rules' policy; with
no ONLINE master, nowhere).  Locally (:func:`local_status`) the services are read from the
cluster home and each host this command can reach is probed with the service's status command:
nothing is started or stopped.  Through etcd (floatingip.status_etcd) the holder locks and the
agents' status records say who holds each VIP, since when, and the last error and repair.

The exit status is the worst verdict's code (:data:`EXIT_CODES`), so monitoring and a load
balancer can run it as is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

from floatingip.actions import probe
from floatingip.commands import Executor
from floatingip.datasource import DataSource, PolicyMode, Role, State
from floatingip.service import ServiceDefinition

__all__ = [
    "EXIT_CODES",
    "ClusterStatus",
    "ServiceStatus",
    "expected_master",
    "format_status",
    "local_status",
    "verdict",
]

# Worst first: a VIP on a host the facts do not put it on (possibly two holders), a VIP the
# facts put somewhere that nobody holds, then one whose state could not be read.
EXIT_CODES = {"ok": 0, "misplaced": 3, "missing": 4, "unknown": 5}
_WORST = ("misplaced", "missing", "unknown", "ok")


@dataclass
class ServiceStatus:
    """One service: where the facts put it, where it was found, and what is known of it."""

    service: str
    expected_host: str | None  # the ONLINE master's host (None: nowhere)
    expected_datasource: str | None
    held_on: list[str] = field(default_factory=list)  # hosts found holding it
    unreadable: list[str] = field(default_factory=list)  # hosts whose state could not be read
    datasource: str | None = None  # the datasource the holder holds it for, where known
    since: float | None = None  # unix time, where known
    last_error: str | None = None
    last_repair: str | None = None
    verdict: str = "ok"
    why: str = ""


@dataclass
class ClusterStatus:
    cluster: str
    source: str  # "local" or the etcd endpoints
    policy: str
    probed: list[str]  # the hosts looked at (local), or [] (etcd: nothing probed)
    services: list[ServiceStatus]
    problems: list[str] = field(default_factory=list)  # keys left out, agents' records...

    @property
    def verdict(self) -> str:
        found = {service.verdict for service in self.services}
        return next(word for word in _WORST if word in found or word == "ok")

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def to_json(self) -> str:
        document = {"verdict": self.verdict, "exit_code": self.exit_code, **asdict(self)}
        return json.dumps(document, indent=2, sort_keys=False)


def expected_master(datasources: Iterable[DataSource]) -> tuple[DataSource | None, str]:
    """The ONLINE master the facts put the VIP with (None: nowhere), and why not when none."""
    masters = [ds for ds in datasources if ds.role is Role.MASTER and ds.state is State.ONLINE]
    if len(masters) > 1:
        names = ", ".join(sorted(ds.name for ds in masters))
        return None, f"more than one ONLINE master ({names})"
    return (masters[0], "") if masters else (None, "no ONLINE master")


def verdict(status: ServiceStatus, *, seen: Iterable[str] | None = None) -> None:
    """Set ``status.verdict`` and ``why``.  ``seen``: the hosts that were looked at (local
    probes; None: etcd, which sees every holder)."""
    expected = status.expected_host
    visible = seen is None or expected in set(seen)
    wrong = [host for host in status.held_on if host != expected]
    if wrong:
        where = expected or "no host"
        status.verdict, status.why = "misplaced", f"held on {', '.join(wrong)}; facts: {where}"
    elif expected is not None and visible and expected not in status.held_on:
        if expected in status.unreadable:
            status.verdict, status.why = "unknown", f"cannot read its state on {expected}"
        else:
            status.verdict, status.why = "missing", f"not held on {expected}"
    elif status.unreadable:
        status.verdict = "unknown"
        status.why = f"cannot read its state on {', '.join(status.unreadable)}"
    else:
        status.verdict, status.why = "ok", ""


def local_status(
    *,
    cluster: str,
    services: Mapping[str, ServiceDefinition],
    datasources: Mapping[str, DataSource],
    policy: PolicyMode,
    executors: Mapping[str, Executor],
) -> ClusterStatus:
    """Probe each service on each host of ``executors`` (status commands only)."""
    master, nobody = expected_master(datasources.values())
    result = []
    for name, service in sorted(services.items()):
        status = ServiceStatus(
            service=name,
            expected_host=master.host if master is not None else None,
            expected_datasource=master.name if master is not None else None,
        )
        for host, executor in sorted(executors.items()):
            found = probe(service, executor)
            if found is None:
                status.unreadable.append(host)
            elif found:
                status.held_on.append(host)
        if status.held_on == [status.expected_host]:
            status.datasource = status.expected_datasource
        verdict(status, seen=executors)
        if not service.reports_held:
            status.why = "its state cannot be read: it needs command.status and a VIP address"
        elif master is None and status.verdict == "ok":
            status.why = nobody
        result.append(status)
    return ClusterStatus(
        cluster=cluster, source="local", policy=str(policy), probed=sorted(executors),
        services=result,
    )  # fmt: skip


def format_status(status: ClusterStatus) -> list[str]:
    """The text report: a heading, one line per service, its details indented under it."""
    where = f"probed {', '.join(status.probed)}" if status.probed else f"etcd {status.source}"
    lines = [f"cluster {status.cluster}, policy {status.policy}, {where}: {status.verdict.upper()}"]
    for service in status.services:
        held = ", ".join(service.held_on) or "nowhere"
        facts = service.expected_host or "nowhere"
        lines.append(
            f"  {service.service}: {service.verdict.upper()}: held on {held}; the facts: {facts}"
        )
        if service.expected_datasource:
            lines.append(f"    the ONLINE master: {service.expected_datasource}")
        if service.datasource:
            lines.append(f"    held for datasource {service.datasource}")
        if service.since is not None:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(service.since))
            lines.append(f"    since {stamp}")
        if service.why:
            lines.append(f"    why: {service.why}")
        if service.last_error:
            lines.append(f"    last error: {service.last_error}")
        if service.last_repair:
            lines.append(f"    last repair: {service.last_repair}")
    lines += [f"  problem: {problem}" for problem in status.problems]
    return lines
