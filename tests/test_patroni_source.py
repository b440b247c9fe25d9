"""Patroni's keys in etcd as datasources (floatingip.patroni_source), with the values Patroni
3.0.2 wrote in a real run (tests/integration/test_patroni_source.py prints them)."""

from __future__ import annotations

import json

import pytest

from floatingip.cli import main
from floatingip.cluster_state import ClusterStateError, DataSourceRecord
from floatingip.datasource import Role, State
from floatingip.errors import UsageError
from floatingip.patroni_source import (
    PatroniMember,
    PatroniScope,
    PatroniSnapshot,
    datasources_from_patroni,
    parse_member,
)

# etcdctl get --prefix /service/demo/members/ after bootstrap (Patroni 3.0.2, etcd3:)
DB1 = (
    b'{"conn_url":"postgres://192.0.2.11:5432/postgres","api_url":"http://192.0.2.11:8008/patroni",'
    b'"state":"running","role":"master","version":"3.0.2","xlog_location":33554432,"timeline":1}'
)
DB2 = (
    b'{"conn_url":"postgres://192.0.2.12:5432/postgres","api_url":"http://192.0.2.12:8008/patroni",'
    b'"state":"running","role":"replica","version":"3.0.2","xlog_location":50331648,"timeline":1}'
)
PREFIX = "/service/demo/"


def member(name: str, role: str, state: str = "running") -> bytes:
    data = json.loads(DB1 if name == "db1" else DB2)
    return json.dumps({**data, "role": role, "state": state}).encode()


def view(leader: str | None, **members: bytes) -> PatroniSnapshot:
    snapshot = PatroniSnapshot("demo", 10, patroni_prefix=PREFIX, own_revision=10)
    if leader is not None:
        snapshot.apply(PREFIX + "leader", leader.encode(), revision=5)
    for name, value in members.items():
        snapshot.apply(f"{PREFIX}members/{name}", value, revision=6)
    return snapshot


def roles(snapshot: PatroniSnapshot) -> dict[str, tuple[str, str]]:
    return {n: (r.role.value, r.state.value) for n, r in sorted(snapshot.datasources.items())}


def test_the_leader_keys_member_running_as_master_is_the_online_master() -> None:
    snapshot = view("db1", db1=DB1, db2=DB2)
    assert snapshot.datasources == {
        "db1": DataSourceRecord("db1", "db1", Role.MASTER, State.ONLINE, 6),
        "db2": DataSourceRecord("db2", "db2", Role.SLAVE, State.ONLINE, 6),
    }
    assert snapshot.problems == {}


def test_patroni_4_writes_primary_for_the_leader() -> None:
    snapshot = view("db2", db1=member("db1", "replica"), db2=member("db2", "primary"))
    assert roles(snapshot) == {"db1": ("slave", "ONLINE"), "db2": ("master", "ONLINE")}


def test_no_leader_key_means_no_master_even_if_a_member_says_master() -> None:
    # the leader's lease expired (its host died) while its member key still says master
    assert roles(view(None, db1=DB1, db2=DB2)) == {
        "db1": ("slave", "ONLINE"),
        "db2": ("slave", "ONLINE"),
    }


def test_the_leader_key_alone_makes_its_member_the_master() -> None:
    # Patroni writes the leader key for db2 ~1 s before db2's member key says it was promoted
    # (its old primary, db1, stopped before it freed the key): db2 is the master at once
    snapshot = view("db2", db1=DB1, db2=DB2)
    assert roles(snapshot) == {"db1": ("slave", "ONLINE"), "db2": ("master", "ONLINE")}
    # pg_ctl promote -W (no wait) ran: "promoted", then Patroni's next loop writes "master"
    for role in ("promoted", "master"):
        snapshot.apply(PREFIX + "members/db2", member("db2", role), revision=11)
        assert roles(snapshot) == {"db1": ("slave", "ONLINE"), "db2": ("master", "ONLINE")}


def test_a_switchover_seen_key_by_key_with_member_keys_lagging() -> None:
    snapshot = view("db1", db1=DB1, db2=DB2)
    assert roles(snapshot)["db1"] == ("master", "ONLINE")
    # the old leader stopped and freed the key; its member key still says master
    snapshot.apply(PREFIX + "leader", None, revision=11)
    assert roles(snapshot) == {"db1": ("slave", "ONLINE"), "db2": ("slave", "ONLINE")}
    snapshot.apply(PREFIX + "leader", b"db2", revision=12)  # db2 won the race, still "replica"
    assert roles(snapshot) == {"db1": ("slave", "ONLINE"), "db2": ("master", "ONLINE")}
    snapshot.apply(PREFIX + "members/db1", member("db1", "demoted", "stopped"), revision=13)
    snapshot.apply(PREFIX + "members/db1", member("db1", "replica"), revision=14)
    snapshot.apply(PREFIX + "members/db2", member("db2", "master"), revision=15)
    assert roles(snapshot) == {"db1": ("slave", "ONLINE"), "db2": ("master", "ONLINE")}


@pytest.mark.parametrize(
    "state", ["stopping", "stopped", "start failed", "restart failed (starting)", "stop failed"]
)
@pytest.mark.parametrize("role", ["master", "primary", "replica"])
def test_a_leader_stopped_or_failing_to_start_is_offline(role: str, state: str) -> None:
    assert roles(view("db1", db1=member("db1", role, state)))["db1"] == ("slave", "OFFLINE")


@pytest.mark.parametrize("state", ["crashed", "starting", "restarting"])
@pytest.mark.parametrize("role", ["master", "primary", "promoted", "replica"])
def test_a_leader_restarted_in_place_stays_the_master(role: str, state: str) -> None:
    # Patroni keeps the leader key and restarts PostgreSQL on the same host: no one else may
    # be primary meanwhile; dropping the VIP would only turn refused connections into lost SYNs
    snapshot = view("db1", db1=member("db1", role, state), db2=DB2)
    assert roles(snapshot) == {"db1": ("master", "ONLINE"), "db2": ("slave", "ONLINE")}


def test_the_leaders_postmaster_killed_as_patroni_3_0_2_writes_it() -> None:
    # etcdctl watch on db1's member key after kill -9 of its postmaster (the integration test)
    snapshot = view("db1", db1=DB1, db2=DB2)
    writes = [("master", "crashed"), ("replica", "starting"), ("replica", "running"),
              ("promoted", "running"), ("master", "running")]  # fmt: skip
    for revision, (role, state) in enumerate(writes, start=11):
        snapshot.apply(PREFIX + "members/db1", member("db1", role, state), revision=revision)
        assert roles(snapshot) == {"db1": ("master", "ONLINE"), "db2": ("slave", "ONLINE")}
    # a start that fails: Patroni keeps the key until primary_start_timeout, the VIP goes
    snapshot.apply(PREFIX + "members/db1", member("db1", "replica", "start failed"), revision=17)
    assert roles(snapshot)["db1"] == ("slave", "OFFLINE")


@pytest.mark.parametrize("role", ["standby_leader", "demoted", "uninitialized", "", "leader"])
def test_a_leader_whose_member_key_is_no_primary_to_be_is_not_a_master(role: str) -> None:
    # standby_leader: a standby cluster's leader (read-only, replicating from elsewhere);
    # demoted: stopping to become a replica or standby_leader; anything unknown: not trusted
    assert roles(view("db1", db1=member("db1", role)))["db1"] == ("slave", "ONLINE")


def test_a_member_key_deleted_removes_its_datasource_and_a_leader_deleted_the_master() -> None:
    snapshot = view("db1", db1=DB1, db2=DB2)
    assert snapshot.apply(PREFIX + "members/db2", None, revision=11) == "datasource"
    assert set(snapshot.datasources) == {"db1"}
    assert snapshot.apply(PREFIX + "leader", None, revision=12) == "datasource"
    assert roles(snapshot) == {"db1": ("slave", "ONLINE")}


def test_patronis_other_keys_are_not_followed() -> None:
    snapshot = view("db1", db1=DB1)
    for rest in ("config", "history", "status", "failover", "sync", "initialize", "optime/leader"):
        assert snapshot.apply(PREFIX + rest, b'{"x": 1}', revision=11) == ""
    assert snapshot.apply(PREFIX + "members/a/b", DB1, revision=11) == ""
    assert set(snapshot.datasources) == {"db1"} and snapshot.problems == {}


def test_a_member_that_does_not_parse_is_reported_with_its_key_and_left_out() -> None:
    snapshot = view("db1", db1=DB1, db2=DB2)
    key = PREFIX + "members/db1"
    assert snapshot.apply(key, b"{not json", revision=11) == "datasource"
    assert "db1" not in snapshot.datasources  # taken as gone: its VIP is released
    assert snapshot.problems[key].startswith(f"etcd key {key}: not Patroni's member JSON")
    snapshot.apply(key, DB1, revision=12)  # written right again
    assert roles(snapshot)["db1"] == ("master", "ONLINE") and snapshot.problems == {}


def test_a_member_name_floatingip_cannot_use_is_reported() -> None:
    snapshot = view("pg 1", **{"pg 1": DB1})
    assert snapshot.datasources == {}
    assert set(snapshot.problems) == {PREFIX + "leader", PREFIX + "members/pg 1"}


def test_parse_member_names_the_key() -> None:
    with pytest.raises(ClusterStateError, match=r"etcd key /k: role 1 and state 'running' must be"):
        parse_member("/k", "db1", b'{"role": 1, "state": "running"}')
    assert parse_member("/k", "db1", b"{}") == PatroniMember("db1", "", "")


def test_floatingips_own_keys_beside_patronis() -> None:
    snapshot = view("db1", db1=DB1)
    # datasource keys of floatingip's layout are not followed in this mode
    own = "/floatingip/demo/"
    assert (
        snapshot.apply(own + "datasource/db2", b'{"role":"master","state":"ONLINE"}', revision=20)
        == ""
    )
    assert set(snapshot.datasources) == {"db1"}
    # holders: an event already in the read (revision <= own_revision) is skipped
    holder = b'{"host": "db1", "datasource": "db1", "since": 1.0}'
    assert snapshot.apply(own + "service/master/holder", holder, revision=10) == ""
    assert snapshot.apply(own + "service/master/holder", holder, revision=21) == "holder"
    assert snapshot.holders["master"].host == "db1"
    assert snapshot.apply(own + "policy", b'{"mode": "MANUAL"}', revision=22) == "policy"


def test_datasources_from_patroni_is_a_pure_mapping() -> None:
    members = {"db1": PatroniMember("db1", "master", "running", 3)}
    assert datasources_from_patroni("db1", members) == {
        "db1": DataSourceRecord("db1", "db1", Role.MASTER, State.ONLINE, 3)
    }
    assert datasources_from_patroni("db2", members)["db1"].role is Role.SLAVE


@pytest.mark.parametrize(
    ("namespace", "prefix"),
    [("/service", "/service/demo/"), ("service/", "/service/demo/"), ("/a//b", "/a/b/demo/")],
)
def test_the_prefix_is_built_as_patroni_builds_it(namespace: str, prefix: str) -> None:
    assert PatroniScope("demo", namespace).prefix == prefix


@pytest.mark.parametrize(("scope", "namespace"), [("", "/service"), ("a/b", "/s"), ("d", "/")])
def test_a_bad_scope_or_namespace_is_refused(scope: str, namespace: str) -> None:
    with pytest.raises(UsageError, match=r"Patroni (scope|namespace)"):
        PatroniScope(scope, namespace)


def test_the_agent_refuses_a_namespace_without_a_scope(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["agent", "--cluster-home", "/nonexistent", "--cluster", "demo", "--host", "db1"]
    argv += ["--etcd", "http://192.0.2.1:2379", "--patroni-namespace", "/service"]
    assert main(argv) == 1
    assert "--patroni-namespace needs --patroni-scope" in capsys.readouterr().err
