"""The cluster's state in etcd: the key layout, its validation, a publisher and a reader.

Every key of cluster ``C`` lives under ``/floatingip/C/``::

    /floatingip/C/datasource/<name>         {"host": "db1", "role": "master", "state": "ONLINE"}
    /floatingip/C/policy                    {"mode": "AUTOMATIC"}
    /floatingip/C/service/<service>/holder  {"host": "db1", "datasource": "db1", "since": 1.7e9}
    /floatingip/C/service/<service>/released  {"host": "db1", "revision": 42, "since": 1.7e9}

Anyone may write the datasource and policy keys (``etcdctl put``, a cluster manager, this
module's :class:`ClusterState`); only agents write holder and released keys
(floatingip.etcd_fence).  ``released`` records a clean release: the holder confirmed the VIP
gone and deleted its holder key (at ``revision``) in the same transaction; taking the lock
deletes it, so it only ever describes the last holder.  A value
that does not parse is reported with its key and left out: a hand-written typo must never stop
an agent.  ``host`` defaults to the datasource's name, as in the datasource files.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from floatingip.config import name_problem, quoted
from floatingip.datasource import PolicyMode, Role, State, parse_policy, parse_role, parse_state
from floatingip.errors import DataSourceError, FloatingIPError, UsageError
from floatingip.etcd_client import EtcdPool

__all__ = [
    "ClusterState",
    "ClusterStateError",
    "DataSourceRecord",
    "HolderRecord",
    "ReleasedRecord",
    "Snapshot",
    "cluster_prefix",
    "holder_key",
]

logger = logging.getLogger(__name__)

MAX_VALUE = 4096  # bytes; our values are a few dozen


class ClusterStateError(FloatingIPError):
    """A key or value under /floatingip/<cluster>/ is not what the layout says; names the key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"etcd key {key}: {message}")
        self.key = key


def cluster_prefix(cluster: str) -> str:
    why = name_problem(cluster, "cluster") if isinstance(cluster, str) else "not a string"
    if why is not None:
        raise UsageError(why)
    return f"/floatingip/{cluster}/"


def datasource_key(cluster: str, name: str) -> str:
    return f"{cluster_prefix(cluster)}datasource/{name}"


def policy_key(cluster: str) -> str:
    return f"{cluster_prefix(cluster)}policy"


def holder_key(cluster: str, service: str) -> str:
    return f"{cluster_prefix(cluster)}service/{service}/holder"


def released_key(cluster: str, service: str) -> str:
    return f"{cluster_prefix(cluster)}service/{service}/released"


@dataclass(frozen=True)
class DataSourceRecord:
    name: str
    host: str
    role: Role
    state: State
    revision: int = 0  # mod_revision of its key

    def to_json(self) -> str:
        return json.dumps({"host": self.host, "role": self.role.value, "state": self.state.value})


@dataclass(frozen=True)
class HolderRecord:
    service: str
    host: str
    datasource: str | None
    since: float
    lease: int = 0
    revision: int = 0

    def to_json(self) -> str:
        return json.dumps({"host": self.host, "datasource": self.datasource, "since": self.since})


@dataclass(frozen=True)
class ReleasedRecord:
    """A clean release: ``host`` stopped the VIP, confirmed it gone, and deleted its holder key,
    last written at ``revision``, in the transaction that wrote this record."""

    service: str
    host: str
    revision: int
    since: float

    def to_json(self) -> str:
        return json.dumps({"host": self.host, "revision": self.revision, "since": self.since})


def _object(key: str, value: bytes, fields: dict[str, bool]) -> dict[str, Any]:
    """The JSON object in ``value``; ``fields`` maps each allowed field to whether it is needed."""
    if len(value) > MAX_VALUE:
        raise ClusterStateError(key, f"value of {len(value)} bytes (at most {MAX_VALUE})")
    try:
        data = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ClusterStateError(key, f"not JSON ({exc}): {quoted(repr(value)[2:-1])}") from None
    if not isinstance(data, dict):
        raise ClusterStateError(key, f"expected a JSON object, not {quoted(json.dumps(data))}")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ClusterStateError(
            key, f"unknown field(s) {', '.join(unknown)} (known: {', '.join(fields)})"
        )
    missing = [name for name, needed in fields.items() if needed and name not in data]
    if missing:
        raise ClusterStateError(key, f"missing field(s) {', '.join(missing)}")
    return data


def _name(key: str, value: Any, what: str) -> str:
    why = name_problem(value, what) if isinstance(value, str) else f"{what} must be a string"
    if why is not None:
        raise ClusterStateError(key, why)
    return str(value)


def parse_datasource(key: str, name: str, value: bytes, revision: int = 0) -> DataSourceRecord:
    _name(key, name, "datasource")
    data = _object(key, value, {"host": False, "role": True, "state": True})
    try:
        role, state = parse_role(data["role"]), parse_state(data["state"])
    except DataSourceError as exc:
        raise ClusterStateError(key, str(exc)) from None
    host = _name(key, data.get("host", name), "host")
    return DataSourceRecord(name, host, role, state, revision)


def parse_policy_value(key: str, value: bytes) -> PolicyMode:
    data = _object(key, value, {"mode": True})
    try:
        return parse_policy(data["mode"])
    except DataSourceError as exc:
        raise ClusterStateError(key, str(exc)) from None


def parse_holder(
    key: str, service: str, value: bytes, *, lease: int = 0, revision: int = 0
) -> HolderRecord:
    data = _object(key, value, {"host": True, "datasource": False, "since": False})
    datasource = data.get("datasource")
    since = data.get("since", 0.0)
    if not isinstance(since, (int, float)) or isinstance(since, bool):
        raise ClusterStateError(key, f"since must be a number, not {since!r:.40}")
    return HolderRecord(
        service,
        _name(key, data["host"], "host"),
        _name(key, datasource, "datasource") if datasource is not None else None,
        float(since),
        lease,
        revision,
    )


def parse_released(key: str, service: str, value: bytes) -> ReleasedRecord:
    data = _object(key, value, {"host": True, "revision": True, "since": False})
    revision, since = data["revision"], data.get("since", 0.0)
    if isinstance(revision, bool) or not isinstance(revision, int) or revision <= 0:
        raise ClusterStateError(
            key, f"revision must be a positive whole number, not {revision!r:.40}"
        )
    if not isinstance(since, (int, float)) or isinstance(since, bool):
        raise ClusterStateError(key, f"since must be a number, not {since!r:.40}")
    return ReleasedRecord(service, _name(key, data["host"], "host"), revision, float(since))


def released_value(host: str, revision: int) -> bytes:
    return ReleasedRecord("", host, revision, time.time()).to_json().encode()


@dataclass
class Snapshot:
    """What etcd says about one cluster, as of ``revision``; ``problems`` lists the keys left
    out, each with why."""

    cluster: str
    revision: int = 0
    datasources: dict[str, DataSourceRecord] = field(default_factory=dict)
    policy: PolicyMode = PolicyMode.AUTOMATIC
    holders: dict[str, HolderRecord] = field(default_factory=dict)
    released: dict[str, ReleasedRecord] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # key -> why it was left out

    def apply(self, key: str, value: bytes | None, *, revision: int, lease: int = 0) -> str:
        """Apply one key's new value (None: deleted); return what changed: "datasource",
        "policy", "holder", "released", "problem" or "" (a key outside the layout, ignored)."""
        prefix = cluster_prefix(self.cluster)
        if not key.startswith(prefix):
            return ""
        rest = key[len(prefix) :].split("/")
        self.problems.pop(key, None)
        try:
            if len(rest) == 2 and rest[0] == "datasource":
                if value is None:
                    self.datasources.pop(rest[1], None)
                else:
                    record = parse_datasource(key, rest[1], value, revision)
                    self.datasources[record.name] = record
                return "datasource"
            if rest == ["policy"]:
                default = PolicyMode.AUTOMATIC
                self.policy = default if value is None else parse_policy_value(key, value)
                return "policy"
            if len(rest) == 3 and rest[0] == "service" and rest[2] == "holder":
                if value is None:
                    self.holders.pop(rest[1], None)
                else:
                    holder = parse_holder(key, rest[1], value, lease=lease, revision=revision)
                    self.holders[rest[1]] = holder
                return "holder"
            if len(rest) == 3 and rest[0] == "service" and rest[2] == "released":
                if value is None:
                    self.released.pop(rest[1], None)
                else:
                    self.released[rest[1]] = parse_released(key, rest[1], value)
                return "released"
        except ClusterStateError as exc:
            self.problems[key] = str(exc)
            logger.error("%s (ignored)", exc)
            return "problem"
        return ""


class ClusterState:
    """Read and publish one cluster's state in etcd (coroutines; run them in one event loop).

    ``await ClusterState(pool, "demo").put_datasource("db1", role="master", state="ONLINE")``
    """

    def __init__(self, pool: EtcdPool, cluster: str) -> None:
        self.pool = pool
        self.cluster = cluster
        self.prefix = cluster_prefix(cluster)

    async def snapshot(self) -> Snapshot:
        """Every key of the cluster in one linearizable read, with its header revision."""
        prefix = self.prefix.encode()
        found = await self.pool.call("read", lambda client: client.get_prefix(prefix))
        snapshot = Snapshot(self.cluster, revision=int(found.header.revision))
        for kv in found:
            snapshot.apply(
                kv.key.decode("utf-8", "replace"),
                kv.value,
                revision=int(kv.mod_revision),
                lease=int(kv.lease),
            )
        return snapshot

    async def put_datasource(
        self, name: str, *, role: Role | str, state: State | str, host: str | None = None
    ) -> int:
        """Publish a datasource's role and state; return the revision.  Checked first: a bad
        name, role or state raises (UsageError, DataSourceError) and writes nothing."""
        why = name_problem(name, "datasource") if isinstance(name, str) else "not a string"
        if why is not None:
            raise UsageError(why)
        if host is not None and name_problem(host, "host") is not None:
            raise UsageError(str(name_problem(host, "host")))
        record = DataSourceRecord(name, host or name, parse_role(role), parse_state(state))
        return await self._put(datasource_key(self.cluster, name), record.to_json())

    async def put_datasources(self, records: Iterable[DataSourceRecord]) -> int:
        """Publish several datasources in one transaction (a switch seen at once by all)."""
        client_ops = [(datasource_key(self.cluster, r.name), r.to_json()) for r in records]

        async def txn(client: Any) -> Any:
            puts = [client.transactions.put(k.encode(), v.encode()) for k, v in client_ops]
            return await client.transaction(compare=[], success=puts, failure=[])

        await self.pool.call("write", txn)
        return 0

    async def put_datasources_if_unchanged(
        self, records: Iterable[DataSourceRecord], seen: Snapshot
    ) -> int:
        """Publish several datasources in one transaction, only if no datasource key was
        written, created or deleted since ``seen`` was read (a switch decided on ``seen`` must
        not promote a second master); return the revision.  ClusterStateError naming the
        datasource keys, having written nothing, if one was."""
        ops = [
            (datasource_key(self.cluster, r.name).encode(), r.to_json().encode()) for r in records
        ]
        directory = f"{self.prefix}datasource/"
        end = directory[:-1] + chr(ord("/") + 1)  # every key under directory/

        async def txn(client: Any) -> Any:
            t = client.transactions
            # each key seen is unchanged (not rewritten, not deleted); no key is newer than seen
            compare = [
                t.mod(datasource_key(self.cluster, name)) == r.revision
                for name, r in seen.datasources.items()
            ]
            compare.append(t.mod(directory, range_end=end) < seen.revision + 1)
            puts = [t.put(key, value) for key, value in ops]
            return await client.transaction(compare=compare, success=puts, failure=[])

        succeeded, responses = await self.pool.call("write", txn)
        if not succeeded:
            raise ClusterStateError(
                directory,
                f"changed since revision {seen.revision}, when it was read; nothing was written",
            )
        return max((int(r.response_put.header.revision) for r in responses), default=seen.revision)

    async def delete_datasource(self, name: str) -> None:
        key = datasource_key(self.cluster, name).encode()
        await self.pool.call("delete", lambda client: client.delete(key))

    async def put_policy(self, mode: PolicyMode | str) -> int:
        value = json.dumps({"mode": parse_policy(mode).value})
        return await self._put(policy_key(self.cluster), value)

    async def _put(self, key: str, value: str) -> int:
        put = await self.pool.call("write", lambda client: client.put(key.encode(), value.encode()))
        return int(put.header.revision)


def holder_value(host: str, datasource: str | None) -> bytes:
    return json.dumps({"host": host, "datasource": datasource, "since": time.time()}).encode()
