"""What a Manager believes about its cluster: the datasources, the policy, and which services it
holds for which datasource; and the questions answered from that belief alone (where a datasource
runs, whom to promote in a switch, how to recover a datasource).

Reads take :attr:`ClusterState.lock`, a short lock held only to change or copy the state, never
the manager's: they do not wait behind a running command.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from floatingip.datasource import (
    DataSource,
    PolicyMode,
    Role,
    State,
    parse_role,
    parse_state,
)
from floatingip.errors import DataSourceError, UsageError
from floatingip.validation import check_mapping, check_name

__all__ = ["ClusterState", "SwitchStep", "initial_roles_and_states"]

# One step of a switch: a datasource, its new role and/or its new state.
SwitchStep = tuple[str, Role | None, State | None]


class ClusterState:
    """The belief of the manager of ``cluster`` on ``host``, which acts for ``hosts``: those of
    ``all_hosts`` (its executors') not declared dead (floatingip.dead)."""

    def __init__(
        self, *, cluster: str, host: str, hosts: frozenset[str], policy: PolicyMode
    ) -> None:
        self.cluster = cluster
        self.host = host
        self.all_hosts = hosts
        self.hosts = hosts
        self.policy = policy
        self.lock = threading.Lock()
        self.datasources: dict[str, DataSource] = {}
        self.holders: dict[str, str] = {}  # service -> the datasource it was started for

    def known(self, name: str) -> DataSource:
        """Datasource ``name``; DataSourceError naming the known ones if there is none."""
        found = self.datasources.get(name)
        if found is None:
            known = ", ".join(sorted(self.datasources)) or "none"
            raise DataSourceError(
                f"unknown datasource {name!r} in cluster {self.cluster!r} (known: {known})"
            )
        return found

    def host_of(self, datasource: str) -> str:
        """Where ``datasource`` runs (this host for one it does not know, such as "")."""
        found = self.datasources.get(datasource)
        return found.host if found is not None else self.host

    def local_datasource_on(self, host: str) -> str | None:
        """The datasource a VIP found on ``host`` belongs to: its master, else its first."""
        on_host = sorted(
            (ds.role is not Role.MASTER, name)
            for name, ds in self.datasources.items()
            if ds.host == host
        )
        return on_host[0][1] if on_host else None

    def others_unknown(self) -> bool:
        """Whether a datasource runs on a host this manager cannot see (or one declared dead):
        then a VIP released there is not confirmed gone, and taking it needs duplicate address
        detection first."""
        return any(ds.host not in self.hosts for ds in self.datasources.values())

    def acts_for(self, host: str) -> bool:
        """False for a host declared dead: a datasource there is not brought back ONLINE."""
        return host in self.hosts or host not in self.all_hosts

    def hold(self, service: str, datasource: str | None) -> None:
        with self.lock:
            if datasource is None:
                self.holders.pop(service, None)
            else:
                self.holders[service] = datasource

    # -- switch -------------------------------------------------------------------------------

    def single_master(self) -> str | None:
        masters = sorted(n for n, ds in self.datasources.items() if ds.role is Role.MASTER)
        if len(masters) > 1:
            raise UsageError(f"cannot switch: more than one master ({', '.join(masters)})")
        return masters[0] if masters else None

    def switch_target(self, to: str | None, old: str | None) -> str:
        """The datasource a switch promotes; UsageError if it cannot."""
        if to is None:
            candidates = sorted(
                name
                for name, ds in self.datasources.items()
                if ds.role is Role.SLAVE and ds.state is State.ONLINE
            )
            if not candidates:
                raise UsageError("cannot switch: no ONLINE slave to promote")
            return candidates[0]
        target = self.known(to)
        if to == old:
            raise UsageError(f"cannot switch to {to!r}: it is already the master")
        if target.state is not State.ONLINE:
            raise UsageError(f"cannot switch to {to!r}: it is {target.state}, not ONLINE")
        return to

    def switch_plan(self, to: str | None) -> tuple[str | None, str, list[SwitchStep]]:
        """The old master, the target, and the steps: the old master goes OFFLINE and becomes
        a slave, the target is promoted, the old master comes back ONLINE if it was (and its
        host is not declared dead)."""
        old = self.single_master()
        target = self.switch_target(to, old)
        was_online = old is not None and self.datasources[old].state is State.ONLINE
        plan: list[SwitchStep] = []
        if old is not None and was_online:
            plan.append((old, None, State.OFFLINE))
        if old is not None:
            plan.append((old, Role.SLAVE, None))
        plan.append((target, Role.MASTER, None))
        if old is not None and was_online and self.acts_for(self.datasources[old].host):
            plan.append((old, None, State.ONLINE))
        return old, target, plan

    # -- recover and welcome ------------------------------------------------------------------

    def recovery_role(self, name: str) -> Role | None:
        """The role ``name`` comes back ONLINE with: a slave if it was a master and another
        datasource is the master now (None: it keeps its role).  UsageError if it is ONLINE."""
        current = self.known(name)
        if current.state is State.ONLINE:
            raise UsageError(f"cannot recover '{name}': it is already ONLINE")
        others = [
            other
            for other, ds in self.datasources.items()
            if other != name and ds.role is Role.MASTER
        ]
        return Role.SLAVE if others and current.role is Role.MASTER else None

    def check_welcome(self, name: str) -> None:
        """UsageError unless ``name`` is SHUNNED (only a shunned datasource is welcomed back)."""
        current = self.known(name).state
        if current is not State.SHUNNED:
            raise UsageError(f"cannot welcome '{name}': it is {current}, not SHUNNED")


def initial_roles_and_states(
    declared: list[DataSource],
    roles: Mapping[str, Role | str] | None,
    states: Mapping[str, State | str] | None,
) -> tuple[dict[str, Role], dict[str, State]]:
    """The roles and states known at start, parsed; DataSourceError for an unknown name."""
    known = {datasource.name for datasource in declared}
    parsed: list[dict[str, Any]] = []
    for what, given, parse in (("roles", roles, parse_role), ("states", states, parse_state)):
        values = {
            check_name(name, "datasource"): parse(value)
            for name, value in check_mapping(given, what, optional=True).items()
        }
        unknown = sorted(set(values) - known)
        if unknown:
            raise DataSourceError(
                f"{what} given for unknown datasource(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(known)) or 'none'})"
            )
        parsed.append(values)
    return parsed[0], parsed[1]
