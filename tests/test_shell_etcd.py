"""`floatingip shell --etcd`: what it decides from what etcd says, and what it refuses (no etcd
needed; tests/integration/test_shell_etcd.py runs it against a real one)."""

from __future__ import annotations

import pytest

from floatingip.cli import main
from floatingip.cluster_state import Snapshot, holder_key
from floatingip.datasource import DataSource, Role, State
from floatingip.errors import UsageError
from floatingip.shell_etcd import belief, listing, switch_changes
from tests.conftest import EXAMPLE_CLUSTER_HOME
from tests.test_shell import safe_example_modes  # noqa: F401 (an autouse fixture)

P = "/floatingip/demo/"
DECLARED = {
    "db1": DataSource("demo", "db1", "db1", Role.MASTER),
    "db2": DataSource("demo", "db2", "db2", Role.SLAVE),
}


def view(**datasources: str) -> Snapshot:
    """A snapshot with ``name="role state"`` datasource keys."""
    found = Snapshot("demo", revision=10)
    for name, value in datasources.items():
        role, state = value.split()
        data = f'{{"role": "{role}", "state": "{state}"}}'.encode()
        assert found.apply(P + f"datasource/{name}", data, revision=5) == "datasource"
    return found


def test_etcd_overrides_the_cluster_home_which_fills_in_offline() -> None:
    state = belief("demo", view(db2="master ONLINE"), DECLARED)
    assert state.datasources["db1"] == DECLARED["db1"]  # never written: as declared, OFFLINE
    assert (state.datasources["db2"].role, state.datasources["db2"].state) == (
        Role.MASTER,
        State.ONLINE,
    )


def test_a_switch_is_one_change_per_datasource_from_before_to_after() -> None:
    state = belief("demo", view(db1="master ONLINE", db2="slave ONLINE"), DECLARED)
    old, target, changes = switch_changes(state, None)
    assert (old, target) == ("db1", "db2")
    after = {new.name: (new.role, new.state) for _, new in changes}
    # the local switch's four steps (db1 OFFLINE, slave, db2 master, db1 ONLINE) end here
    assert after == {"db1": (Role.SLAVE, State.ONLINE), "db2": (Role.MASTER, State.ONLINE)}


def test_a_switch_leaves_an_offline_old_master_offline() -> None:
    state = belief("demo", view(db1="master OFFLINE", db2="slave ONLINE"), DECLARED)
    _, _, changes = switch_changes(state, "db2")
    after = {new.name: (new.role, new.state) for _, new in changes}
    assert after == {"db1": (Role.SLAVE, State.OFFLINE), "db2": (Role.MASTER, State.ONLINE)}


@pytest.mark.parametrize(
    ("datasources", "to", "says"),
    [
        ({"db1": "master ONLINE", "db2": "slave OFFLINE"}, "db2", "it is OFFLINE, not ONLINE"),
        ({"db1": "master ONLINE", "db2": "slave OFFLINE"}, None, "no ONLINE slave"),
        ({"db1": "master ONLINE", "db2": "master ONLINE"}, None, "more than one master"),
        ({"db1": "master ONLINE"}, "db1", "already the master"),
    ],
)
def test_a_switch_that_cannot_be_is_refused(
    datasources: dict[str, str], to: str | None, says: str
) -> None:
    with pytest.raises(UsageError, match=says):
        switch_changes(belief("demo", view(**datasources), DECLARED), to)


def test_ls_shows_what_etcd_says_and_who_holds_each_vip() -> None:
    found = view(db2="master ONLINE")
    holder = b'{"host": "db2", "datasource": "db2", "since": 1764280000.0}'
    found.apply(holder_key("demo", "master"), holder, revision=7, lease=99)
    found.apply(holder_key("demo", "other"), b'{"host": "db9"}', revision=8)  # no lease
    found.apply(P + "datasource/db3", b"garbage", revision=9)
    declared = {**DECLARED, "db3": DataSource("demo", "db3", "h3", Role.SLAVE)}
    heading, rows, tail = listing(found, declared, ["master", "web"], endpoint="http://e:2379")
    assert heading == ["ETCD[http://e:2379:AUTOMATIC] revision 10", "DATASOURCES:"]
    assert rows[1:] == [
        ("db1", "db1", "master", "(not in etcd)", "-"),
        ("db2", "db2", "master", "ONLINE", "master"),
        ("db3", "h3", "slave", "(see LEFT OUT)", "-"),
    ]
    assert tail[0] == "SERVICES:"
    assert tail[1].startswith("  master: held on db2 (for db2) since 2025-11-2")
    assert tail[2].startswith("  other: held on db9 (for -) since ")
    assert tail[2].endswith("(no lease: written by hand?)")
    assert tail[3] == "  web: held by nobody"
    assert tail[4].startswith("LEFT OUT: etcd key /floatingip/demo/datasource/db3: not JSON")


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--dry-run"], "--dry-run: for a shell that runs commands here"),
        (["--netns", "db1=ns1", "--state", "db1=ONLINE"], "--netns, --state: for a shell"),
        (["--host", "db1"], "--host: for a shell that runs commands here"),
        (["--monitor", "10"], "--monitor: for a shell"),
    ],
)
def test_options_of_a_local_shell_are_refused_with_etcd(
    extra: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["shell", "--cluster-home", str(EXAMPLE_CLUSTER_HOME), "--cluster", "demo"]
    assert main([*argv, "--etcd", "http://192.0.2.1:2379", *extra]) == 1
    assert says in capsys.readouterr().err


def test_a_bad_etcd_url_is_refused_before_the_shell_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["shell", "--cluster-home", str(EXAMPLE_CLUSTER_HOME), "--cluster", "demo"]
    assert main([*argv, "--etcd", "https://192.0.2.1:2379"]) == 1
    assert "only http:// is supported" in capsys.readouterr().err
