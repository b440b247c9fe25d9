"""The fact schema: the facts the Manager asserts and rule files match, in one place (the
table in floatingip.rules describes their fields for rule authors).

Every fact has an ``id`` (one fact per id: a new version replaces the old) and a ``kind``.  The
builders below are what the Manager asserts; floatingip.rules' condition helpers match the same
names, and the benchmarks feed raw durable_rules the same facts.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from floatingip.datasource import DataSource, PolicyMode
from floatingip.vocabulary import Phase

__all__ = [
    "DATASOURCE",
    "KIND",
    "MANAGER",
    "POLICY",
    "SERVICE",
    "Fact",
    "datasource_fact",
    "manager_fact",
    "policy_fact",
    "service_fact",
]

Fact = dict[str, Any]

# the field every fact has, and its values
KIND = "kind"
DATASOURCE = "datasource"
POLICY = "policy"
SERVICE = "service"
MANAGER = "manager"


def manager_fact(host: str, state: Phase) -> Fact:
    return {"id": MANAGER, KIND: MANAGER, "host": host, "state": state.value}


def policy_fact(mode: PolicyMode) -> Fact:
    return {"id": POLICY, KIND: POLICY, "mode": mode.value}


def service_fact(name: str, holder: str | None) -> Fact:
    """``holder``: the datasource the service was started for ("" if none), None if not held."""
    return {
        "id": f"{SERVICE}:{name}",
        KIND: SERVICE,
        "name": name,
        "held": holder is not None,
        "holder": holder or "",
    }


def datasource_fact(
    datasource: DataSource, previous: DataSource | None, hosts: Collection[str]
) -> Fact:
    """``hosts``: the hosts this manager acts for (``local``: the datasource is on one)."""
    # _value_ is what Enum.value returns, read as a plain attribute: this runs on every change
    return {
        "id": f"{DATASOURCE}:{datasource.name}",
        KIND: DATASOURCE,
        "cluster": datasource.cluster,
        "name": datasource.name,
        "host": datasource.host,
        "role": datasource.role._value_,
        "state": datasource.state._value_,
        "local": datasource.host in hosts,
        "previous_role": previous.role._value_ if previous else "",
        "previous_state": previous.state._value_ if previous else "",
    }
