"""Patroni's own keys in etcd as the agent's datasources (``floatingip agent --patroni-scope``).

Patroni (``etcd3:`` in patroni.yml, etcd's v3 API) keeps, under ``/<namespace>/<scope>/``::

    leader              the leader member's name, attached to Patroni's lease: gone when it dies
    members/<name>      {"conn_url": "postgres://198.51.100.1:5432/postgres",
                         "api_url": "http://198.51.100.1:8008/patroni", "state": "running",
                         "role": "master", "version": "3.0.2", "xlog_location": ..., ...}

(patroni/dcs/__init__.py: ``_LEADER``, ``_MEMBERS``, ``client_path``; ha.py: ``touch_member``).
Each member is a datasource named after it, on the host of the same name (the agent's ``--host``
is the member's ``name:`` in patroni.yml, as vip-manager's trigger-value).  The member the leader
key names is the ONLINE master as soon as the key names it, while its member key is state
``running`` and its role one a primary-to-be may have: ``master`` (3.x), ``primary`` (4.x),
``promoted`` or still ``replica`` (Patroni rewrites the member key about a second after it took
the leader key), and stays so while Patroni restarts its PostgreSQL in place keeping the key
(states ``crashed``, ``starting``, ``restarting``: a kill -9 of the postmaster or ``patronictl
restart``).  Patroni writes the leader key only once the old leader is gone: in a switchover
the old primary frees it after its shutdown checkpoint (ha.py ``demote``: ``on_shutdown`` then
``release_leader_key_voluntarily``), in a failover a new one is created only after the old one's
lease expired (``attempt_to_acquire_leader``: create if absent).  A leader whose member key says
``standby_leader`` (a standby cluster's read-only leader), ``demoted``, ``uninitialized`` or
anything else is not a master.  Every other member is a slave, ONLINE when running, else OFFLINE;
with no leader key nobody may hold the VIP.
A member whose value does not parse is reported and left out (taken as gone), like a bad key of
floatingip's own layout.

The holder locks and the policy stay floatingip's own (/floatingip/<cluster>/), read after
Patroni's keys and watched with them; datasource keys there are ignored in this mode.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from floatingip.cluster_state import (
    MAX_VALUE,
    ClusterState,
    ClusterStateError,
    DataSourceRecord,
    Snapshot,
)
from floatingip.config import name_problem
from floatingip.datasource import Role, State
from floatingip.errors import UsageError

__all__ = [
    "PatroniMember",
    "PatroniScope",
    "PatroniSnapshot",
    "PatroniState",
    "datasources_from_patroni",
    "parse_member",
    "scope_from_options",
    "state_reader",
    "watched_prefixes",
]

logger = logging.getLogger(__name__)

# 3.x writes master, 4.x primary.  promoted: 3.x sets it right after `pg_ctl promote -W` (no
# wait: PostgreSQL may still be in recovery for a moment) until its next loop writes master; the
# docs call it a primary, the behaviour is "promotion asked for".  replica: the member key not yet
# rewritten after the member took the leader key.  Any other role named by the leader key
# (standby_leader, demoted, uninitialized, unknown) is no primary-to-be.
PRIMARY_ROLES = frozenset({"master", "primary", "promoted"})
PRIMARY_TO_BE_ROLES = PRIMARY_ROLES | {"replica"}
RUNNING = "running"
# The leader key's member whose PostgreSQL Patroni restarts in place, keeping the key: after a
# crash (ha.py: "crashed", then recover() starts it read-only as role replica, "starting", then
# promotes it) or on `patronictl restart` ("restarting").  No one else may be primary meanwhile,
# so the VIP stays: clients are refused at once instead of losing SYNs to an address nobody has,
# and nothing is re-announced.  "start failed" / "restart failed (...)" / stopped: the VIP goes.
RESTARTING_IN_PLACE = frozenset({"crashed", "starting", "restarting"})
LEADER_STATES = RESTARTING_IN_PLACE | {RUNNING}


@dataclass(frozen=True)
class PatroniScope:
    """Patroni's ``scope`` and ``namespace`` (default ``/service``) in patroni.yml."""

    scope: str
    namespace: str = "/service"

    def __post_init__(self) -> None:
        for what, value in (("scope", self.scope), ("namespace", self.namespace)):
            if not value.strip("/") or re.search(r"[\s\x00-\x1f]", value):
                raise UsageError(f"Patroni {what} {value!r} is not valid (empty or has blanks)")
        if "/" in self.scope:
            raise UsageError(f"Patroni scope {self.scope!r} is not valid (has '/')")

    @property
    def prefix(self) -> str:
        """As Patroni builds it: '/'.join(['', namespace, scope]) with repeated '/' squeezed."""
        return re.sub("/+", "/", f"/{self.namespace}/{self.scope}/")


def scope_from_options(scope: str | None, namespace: str | None) -> PatroniScope | None:
    """``--patroni-scope`` and ``--patroni-namespace`` (None: not given)."""
    if namespace is not None and scope is None:
        raise UsageError("--patroni-namespace needs --patroni-scope")
    return None if scope is None else PatroniScope(scope, namespace or "/service")


@dataclass(frozen=True)
class PatroniMember:
    name: str
    role: str  # as Patroni wrote it: master, primary, replica, standby_leader, demoted, ...
    state: str  # running, starting, stopped, stopping, restarting, creating replica, ...
    revision: int = 0


def parse_member(key: str, name: str, value: bytes, revision: int = 0) -> PatroniMember:
    """One ``members/<name>`` value; ClusterStateError naming the key if it is not a member."""
    why = name_problem(name, "Patroni member (datasource)")
    if why is not None:
        raise ClusterStateError(key, why)
    if len(value) > 16 * MAX_VALUE:  # tags and slots make it bigger than ours
        raise ClusterStateError(key, f"value of {len(value)} bytes")
    try:
        data: Any = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ClusterStateError(key, f"not Patroni's member JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ClusterStateError(key, "not Patroni's member JSON (not an object)")
    role, state = data.get("role", ""), data.get("state", "")
    if not isinstance(role, str) or not isinstance(state, str):
        raise ClusterStateError(key, f"role {role!r:.40} and state {state!r:.40} must be strings")
    return PatroniMember(name, role, state, revision)


def datasources_from_patroni(
    leader: str | None, members: dict[str, PatroniMember]
) -> dict[str, DataSourceRecord]:
    """The datasources Patroni's keys say: the leader key's member, running (or restarted in
    place) with a primary-to-be role, is the ONLINE master; every other member a slave (a role
    'master' without the leader key is an old primary not yet demoted: never a master here)."""
    records = {}
    for name, member in members.items():
        master = (
            name == leader and member.role in PRIMARY_TO_BE_ROLES and member.state in LEADER_STATES
        )
        role = Role.MASTER if master else Role.SLAVE
        state = State.ONLINE if master or member.state == RUNNING else State.OFFLINE
        records[name] = DataSourceRecord(name, name, role, state, member.revision)
    return records


@dataclass
class PatroniSnapshot(Snapshot):
    """A Snapshot whose datasources come from Patroni's keys under ``patroni_prefix``; the rest
    (policy, holders) from floatingip's own keys, read at ``own_revision``: the agent watches
    both from ``revision`` + 1 (when Patroni's were read), so an own key's event up to
    ``own_revision`` is already in and is skipped."""

    patroni_prefix: str = ""
    leader: str | None = None
    members: dict[str, PatroniMember] = field(default_factory=dict)
    own_revision: int = 0

    def apply(self, key: str, value: bytes | None, *, revision: int, lease: int = 0) -> str:
        if key.startswith(self.patroni_prefix):
            return self._apply_patroni(key, key[len(self.patroni_prefix) :], value, revision)
        own = f"/floatingip/{self.cluster}/"
        if key.startswith(own + "datasource/") or (
            key.startswith(own) and revision <= self.own_revision
        ):
            return ""
        return super().apply(key, value, revision=revision, lease=lease)

    def _apply_patroni(self, key: str, rest: str, value: bytes | None, revision: int) -> str:
        name = rest[len("members/") :] if rest.startswith("members/") else ""
        if rest != "leader" and (not name or "/" in name):
            return ""  # config, history, status, failover, sync, ...: not ours to follow
        self.problems.pop(key, None)
        try:
            if rest == "leader":
                self.leader = None
                if value is not None:
                    text = value.decode("utf-8", "replace")
                    why = name_problem(text, "Patroni leader (member)")
                    if why is not None:
                        raise ClusterStateError(key, why)
                    self.leader = text
            elif value is None:
                self.members.pop(name, None)
            else:
                self.members.pop(name, None)  # a value that does not parse: taken as gone
                self.members[name] = parse_member(key, name, value, revision)
        except ClusterStateError as exc:
            self.problems[key] = str(exc)
            logger.error("%s (ignored)", exc)
        self.datasources = datasources_from_patroni(self.leader, self.members)
        return "datasource"


class PatroniState(ClusterState):
    """The agent's reader in this mode: Patroni's keys, then floatingip's own (holders, policy);
    ``watched`` are the two prefixes to watch."""

    def __init__(self, pool: Any, cluster: str, patroni: PatroniScope) -> None:
        super().__init__(pool, cluster)
        self.patroni = patroni
        self.watched = (patroni.prefix, self.prefix)

    async def snapshot(self) -> Snapshot:
        patroni, own = self.watched
        found = await self._read(patroni)
        snapshot = PatroniSnapshot(self.cluster, int(found.header.revision), patroni_prefix=patroni)
        _load(snapshot, found)
        found = await self._read(own)
        _load(snapshot, found)
        snapshot.own_revision = int(found.header.revision)
        return snapshot

    async def _read(self, prefix: str) -> Any:
        return await self.pool.call("read", lambda client: client.get_prefix(prefix.encode()))


def _load(snapshot: Snapshot, found: Any) -> None:
    for kv in found:
        key = kv.key.decode("utf-8", "replace")
        snapshot.apply(key, kv.value, revision=int(kv.mod_revision), lease=int(kv.lease))


def state_reader(pool: Any, cluster: str, patroni: PatroniScope | None) -> ClusterState:
    """The agent's reader: floatingip's own layout, or Patroni's keys if ``patroni`` is set."""
    return ClusterState(pool, cluster) if patroni is None else PatroniState(pool, cluster, patroni)


def watched_prefixes(state: ClusterState) -> tuple[str, ...]:
    return state.watched if isinstance(state, PatroniState) else (state.prefix,)
