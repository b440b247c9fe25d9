"""The etcd key layout: what parses, and what a hand-written mistake gives (no etcd needed)."""

from __future__ import annotations

import pytest

from floatingip.cluster_state import Snapshot, holder_key
from floatingip.datasource import PolicyMode, Role, State
from floatingip.errors import UsageError
from floatingip.etcd_client import Endpoint, parse_endpoints

P = "/floatingip/demo/"


def test_datasource_policy_and_holder_keys_parse() -> None:
    view = Snapshot("demo")
    value = b'{"host": "h1", "role": "MASTER", "state": "online"}'
    assert view.apply(P + "datasource/db1", value, revision=5) == "datasource"
    assert view.apply(P + "datasource/db2", b'{"role":"slave","state":"OFFLINE"}', revision=6)
    assert view.apply(P + "policy", b'{"mode": "maintenance"}', revision=7) == "policy"
    holder = b'{"host": "h1", "datasource": "db1", "since": 1.5}'
    assert view.apply(holder_key("demo", "master"), holder, revision=8, lease=9) == "holder"
    db1, db2 = view.datasources["db1"], view.datasources["db2"]
    assert (db1.host, db1.role, db1.state, db1.revision) == ("h1", Role.MASTER, State.ONLINE, 5)
    assert db2.host == "db2"  # defaults to the name, as in the datasource files
    assert view.policy is PolicyMode.MAINTENANCE
    assert view.holders["master"].host == "h1" and view.holders["master"].lease == 9
    assert view.problems == {}


def test_deleting_keys() -> None:
    view = Snapshot("demo")
    view.apply(P + "datasource/db1", b'{"role":"master","state":"ONLINE"}', revision=1)
    view.apply(P + "policy", b'{"mode":"MANUAL"}', revision=2)
    view.apply(P + "datasource/db1", None, revision=3)
    view.apply(P + "policy", None, revision=4)
    assert view.datasources == {} and view.policy is PolicyMode.AUTOMATIC


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("datasource/db1", b"master", "not JSON"),
        ("datasource/db1", b"[1]", "expected a JSON object"),
        ("datasource/db1", b'{"role":"master"}', "missing field(s) state"),
        ("datasource/db1", b'{"role":"boss","state":"ONLINE"}', "unknown role 'boss'"),
        ("datasource/db1", b'{"role":"master","state":"UP"}', "unknown state 'UP'"),
        ("datasource/db1", b'{"rol":"master","state":"UP"}', "unknown field(s) rol"),
        ("datasource/db1", b'{"host":"a b","role":"master","state":"ONLINE"}', "host name"),
        ("datasource/a b", b'{"role":"master","state":"ONLINE"}', "datasource name"),
        ("policy", b'{"mode":"sometimes"}', "unknown policy mode"),
        ("service/master/holder", b'{"datasource":"db1"}', "missing field(s) host"),
        ("service/master/holder", b'{"host":"h","since":"now"}', "since must be a number"),
        ("datasource/db1", b"\xff", "not JSON"),
    ],
)
def test_a_malformed_value_is_reported_with_its_key_and_left_out(
    key: str, value: bytes, says: str
) -> None:
    view = Snapshot("demo")
    good = b'{"role":"slave","state":"ONLINE"}'
    view.apply(P + "datasource/db1", good, revision=1)
    assert view.apply(P + key, value, revision=2) == "problem"
    assert says in view.problems[P + key] and f"etcd key {P}{key}:" in view.problems[P + key]
    assert view.datasources["db1"].role is Role.SLAVE  # the last good value stays
    assert view.policy is PolicyMode.AUTOMATIC
    # a good value written afterwards clears the problem
    view.apply(P + "datasource/db1", good, revision=3)
    assert P + "datasource/db1" not in view.problems


def test_keys_outside_the_layout_are_ignored() -> None:
    view = Snapshot("demo")
    assert view.apply("/floatingip/other/policy", b"junk", revision=1) == ""
    assert view.apply(P + "notes/x", b"junk", revision=1) == ""
    assert view.problems == {}


def test_endpoints() -> None:
    assert parse_endpoints("http://192.0.2.1:2379, 192.0.2.2") == (
        Endpoint("192.0.2.1", 2379),
        Endpoint("192.0.2.2", 2379),
    )
    for bad, says in [
        ("", "at least one URL"),
        ("https://192.0.2.1:2379", "only http://"),
        ("http://192.0.2.1:99999", "port"),
        ("http://192.0.2.1:2379/v3", "expected http://HOST:PORT"),
        ("192.0.2.1,192.0.2.1:2379", "twice"),
    ]:
        with pytest.raises(UsageError, match=says):
            parse_endpoints(bad)
