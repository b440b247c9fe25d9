"""Datasources, their roles and states, and the cluster policy, in Tungsten's vocabulary.

Datasources are declared in ``cluster-home/conf/cluster/<cluster>/datasource/<name>.properties``
(``name``, ``host`` defaulting to the name, ``role``) or through the Manager's API.  They start
OFFLINE until the cluster manager reports otherwise.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from floatingip.config import cluster_directory, name_problem, read_config_file, trusted_directory
from floatingip.errors import DataSourceDefinitionError, DataSourceError, Problem
from floatingip.trusted import TrustedDirectory

__all__ = [
    "DataSource",
    "PolicyMode",
    "Role",
    "State",
    "load_datasources",
    "parse_policy",
    "parse_role",
    "parse_state",
]

logger = logging.getLogger(__name__)


class Role(str, enum.Enum):
    """Tungsten's DataSourceRole."""

    MASTER = "master"
    SLAVE = "slave"
    RELAY = "relay"
    STANDBY = "standby"
    WITNESS = "witness"
    ARCHIVE = "archive"

    def __str__(self) -> str:
        return self.value


class State(str, enum.Enum):
    """Tungsten's ResourceState (the ones a datasource takes)."""

    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"
    SHUNNED = "SHUNNED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"
    SUSPECT = "SUSPECT"
    UNKNOWN = "UNKNOWN"
    RESTARTING = "RESTARTING"
    BACKUP = "BACKUP"
    RESTORING = "RESTORING"
    SYNCHRONIZING = "SYNCHRONIZING"
    JOINING = "JOINING"
    DEGRADED = "DEGRADED"

    def __str__(self) -> str:
        return self.value


class PolicyMode(str, enum.Enum):
    """The cluster policy: in MAINTENANCE no rule runs a command."""

    AUTOMATIC = "AUTOMATIC"
    MANUAL = "MANUAL"
    MAINTENANCE = "MAINTENANCE"

    def __str__(self) -> str:
        return self.value


_E = TypeVar("_E", Role, State, PolicyMode)


_BY_NAME: dict[type, dict[str, Any]] = {
    kind: {member.value.lower(): member for member in kind} for kind in (Role, State, PolicyMode)
}


def _parse(kind: type[_E], what: str, value: object) -> _E:
    if isinstance(value, kind):
        return value
    if isinstance(value, str):
        member = _BY_NAME[kind].get(value.strip().lower())
        if member is not None:
            return member  # type: ignore[no-any-return]
    choices = ", ".join(member.value for member in kind)
    raise DataSourceError(f"unknown {what} {value!r}; expected one of: {choices}")


def parse_role(value: object) -> Role:
    """A Role from a Role or its name in any case; DataSourceError naming the choices otherwise."""
    return _parse(Role, "role", value)


def parse_state(value: object) -> State:
    """A State from a State or its name in any case; DataSourceError otherwise."""
    return _parse(State, "state", value)


def parse_policy(value: object) -> PolicyMode:
    """A PolicyMode from a PolicyMode or its name in any case; DataSourceError otherwise."""
    return _parse(PolicyMode, "policy mode", value)


@dataclass(frozen=True)
class DataSource:
    """One datasource of a cluster: where it runs, what it is, how it is."""

    cluster: str
    name: str
    host: str
    role: Role
    state: State = State.OFFLINE
    path: Path | None = None

    def __post_init__(self) -> None:
        for what, value in (("datasource", self.name), ("host", self.host)):
            why = name_problem(value, what)
            if why is not None:
                raise DataSourceError(why)
        object.__setattr__(self, "role", parse_role(self.role))
        object.__setattr__(self, "state", parse_state(self.state))

    @property
    def is_online_master(self) -> bool:
        return self.role is Role.MASTER and self.state is State.ONLINE

    def changed(self, *, role: Role | None = None, state: State | None = None) -> DataSource:
        """A copy with a new role and/or state (already parsed: no re-validation, it is hot)."""
        new = object.__new__(DataSource)
        new.__dict__.update(self.__dict__)
        if role is not None:
            new.__dict__["role"] = role
        if state is not None:
            new.__dict__["state"] = state
        return new


KNOWN_KEYS = ("name", "host", "role")


def _read_datasource(
    directory: TrustedDirectory, filename: str, cluster: str
) -> tuple[DataSource | None, list[Problem]]:
    config, problems = read_config_file(directory, filename, "datasource file", KNOWN_KEYS)
    if config is None:
        return None, problems
    path, values, lines = config.path, config.values, config.lines
    name = values.get("name")
    if name is None:
        problems.append(Problem(path, None, "missing required key 'name'"))
    elif (why := name_problem(name, "datasource")) is not None:
        problems.append(Problem(path, lines["name"], why))
    host = values.get("host", name)
    if "host" in values and (why := name_problem(values["host"], "host")) is not None:
        problems.append(Problem(path, lines["host"], why))
    role: Role | None = None
    if "role" not in values:
        problems.append(Problem(path, None, "missing required key 'role'"))
    else:
        try:
            role = parse_role(values["role"])
        except DataSourceError as exc:
            problems.append(Problem(path, lines["role"], str(exc)))
    if problems or name is None or host is None or role is None:
        return None, problems
    return DataSource(cluster=cluster, name=name, host=host, role=role, path=path), []


def load_datasources(cluster_home: str | Path, cluster: str) -> dict[str, DataSource]:
    """Load ``conf/cluster/<cluster>/datasource/*.properties`` keyed by name, all OFFLINE.

    A missing datasource directory means none are declared.  Every problem of every file is
    reported in one DataSourceDefinitionError.
    """
    directory = cluster_directory(cluster_home, cluster) / "datasource"
    if not directory.is_dir():
        return {}
    with trusted_directory(directory, "datasource directory", DataSourceDefinitionError) as trusted:
        read = [_read_datasource(trusted, name, cluster) for name in trusted.names(".properties")]
    problems: list[Problem] = []
    datasources: dict[str, DataSource] = {}
    for datasource, file_problems in read:
        problems += file_problems
        if datasource is None:
            continue
        path = datasource.path
        if datasource.name in datasources:
            other = datasources[datasource.name].path
            problems.append(
                Problem(path, None, f"datasource {datasource.name!r} is already defined in {other}")
            )
            continue
        datasources[datasource.name] = datasource
    if problems:
        raise DataSourceDefinitionError(problems)
    logger.info("loaded %d datasource(s) from %s", len(datasources), directory)
    return datasources
