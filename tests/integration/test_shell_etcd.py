"""`floatingip shell --etcd`: the seed's session, published to a real etcd; ls reads it back."""

from __future__ import annotations

import json
import subprocess
import sys
from base64 import b64decode
from collections.abc import Iterator
from pathlib import Path

import pytest

from floatingip.sandbox import Sandbox
from tests.conftest import EXAMPLE_CLUSTER_HOME
from tests.integration.etcd_cluster import EtcdCluster
from tests.integration.etcd_world import require_etcd, start_with_db1_master, world

PROMPT = "[LOGICAL] /cluster/demo/> "
KEYS = "/floatingip/demo/"


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdCluster]:
    """One etcd member on host etcd1; the shell runs on host client."""
    require_etcd()
    with Sandbox(["etcd1", "client"], network="203.0.113.0/24") as sandbox:
        cluster = EtcdCluster(sandbox, ["etcd1"], tmp_path / "etcd")
        try:
            yield cluster.start()
        finally:
            cluster.close()


def cluster_home(tmp_path: Path, datasources: dict[str, str] | None = None) -> Path:
    """The example cluster home (db1 master, db2 slave), or one with ``datasources``."""
    home = tmp_path / "cluster-home"
    conf = home / "conf/cluster/demo"
    (conf / "service").mkdir(parents=True)
    (conf / "datasource").mkdir()
    (conf / "service/master.properties").write_bytes(
        (EXAMPLE_CLUSTER_HOME / "conf/cluster/demo/service/master.properties").read_bytes()
    )
    for name, role in (datasources or {"db1": "master", "db2": "slave"}).items():
        (conf / f"datasource/{name}.properties").write_text(f"name={name}\nrole={role}\n")
    for path in [home, *home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return home


def run_shell(
    cluster: EtcdCluster, home: Path, lines: list[str], *, endpoints: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`floatingip shell --etcd` on host client, fed ``lines`` as an operator's script."""
    return subprocess.run(
        ["ip", "netns", "exec", cluster.sandbox.namespaces["client"], sys.executable, "-m",
         "floatingip", "shell", "--cluster-home", str(home), "--cluster", "demo",
         "--etcd", endpoints or cluster.endpoints],
        input="".join(line + "\n" for line in lines),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def get(cluster: EtcdCluster, key: str) -> tuple[dict[str, object] | None, int]:
    """The JSON value of ``key`` and its mod revision, as etcdctl reads them."""
    result = cluster.etcdctl("client", "get", KEYS + key, "--write-out=json")
    assert result.returncode == 0, result.stderr
    kvs = json.loads(result.stdout).get("kvs", [])
    if not kvs:
        return None, 0
    return json.loads(b64decode(kvs[0]["value"])), int(kvs[0]["mod_revision"])


def test_the_seed_session_word_for_word_is_published(etcd: EtcdCluster, tmp_path: Path) -> None:
    home = cluster_home(tmp_path, {"centos5a": "master"})
    online = run_shell(etcd, home, ["datasource centos5a online"])
    assert online.returncode == 0, online.stdout + online.stderr
    # the agents act on the key: it holds the datasource's host, role (from the cluster home)
    # and the new state
    assert get(etcd, "datasource/centos5a")[0] == {
        "host": "centos5a",
        "role": "master",
        "state": "ONLINE",
    }
    offline = run_shell(etcd, home, ["datasource centos5a offline"])
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert get(etcd, "datasource/centos5a")[0] == {
        "host": "centos5a",
        "role": "master",
        "state": "OFFLINE",
    }
    assert (online.stdout + offline.stdout).splitlines() == [
        f"{PROMPT}datasource centos5a online",
        "DataSource 'centos5a' is now ONLINE",
        f"{PROMPT}datasource centos5a offline",
        "DataSource 'centos5a' is now OFFLINE",
    ]


def test_switch_policy_and_ls_with_a_holder(etcd: EtcdCluster, tmp_path: Path) -> None:
    home = cluster_home(tmp_path)
    result = run_shell(
        etcd,
        home,
        [
            "datasource db1 online",
            "datasource db2 online",
            "switch to db2",
            "set policy manual",
            "datasource db2 fail",
            "datasource db2 recover",
            "ls",
            "service master status",
        ],
    )
    out = result.stdout
    assert "SELECTED SLAVE: 'db2'" in out and "SWITCH TO 'db2' WAS SUCCESSFUL" in out, out
    assert "  datasource db2: role slave -> master" in out
    assert "policy mode is now MANUAL" in out
    assert "DataSource 'db2' set to FAILED" in out and "DataSource 'db2' is now ONLINE" in out
    # the one refused command: a command on this machine, with a one-line reason
    assert "ERROR: 'service' runs a command on this machine; with --etcd the agents" in out
    assert result.returncode == 1
    db1, db1_revision = get(etcd, "datasource/db1")
    db2, _ = get(etcd, "datasource/db2")
    assert db1 == {"host": "db1", "role": "slave", "state": "ONLINE"}
    assert db2 == {"host": "db2", "role": "master", "state": "ONLINE"}
    assert get(etcd, "policy")[0] == {"mode": "MANUAL"}
    assert "  db2   db2   master  ONLINE  -" in out and "  master: held by nobody" in out

    # the switch wrote both keys in one transaction: one revision, never two masters between
    switched = run_shell(etcd, home, ["switch"])
    assert "SWITCH TO 'db1' WAS SUCCESSFUL" in switched.stdout, switched.stdout
    db1, db1_switched = get(etcd, "datasource/db1")
    db2, db2_switched = get(etcd, "datasource/db2")
    assert (db1 or {})["role"] == "master" and (db2 or {})["role"] == "slave"
    assert db1_switched == db2_switched > db1_revision

    # an agent holds the VIP: its holder key, attached to its lease
    lease = etcd.etcdctl("client", "lease", "grant", "60").stdout.split()[1]
    holder = json.dumps({"host": "db1", "datasource": "db1", "since": 1764280000.0})
    put = etcd.etcdctl("client", "put", f"--lease={lease}", KEYS + "service/master/holder", holder)
    assert put.returncode == 0, put.stderr
    listed = run_shell(etcd, home, ["ls"]).stdout
    assert "  db1   db1   master  ONLINE  master" in listed, listed
    assert "  master: held on db1 (for db1) since " in listed
    assert "no lease" not in listed


def test_an_unreachable_etcd_is_one_line_and_the_shell_goes_on(
    etcd: EtcdCluster, tmp_path: Path
) -> None:
    home = cluster_home(tmp_path)
    dead = f"http://{etcd.sandbox.addresses['client']}:2379"  # nothing listens there
    result = run_shell(etcd, home, ["datasource db1 online", "ls"], endpoints=dead)
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"WARNING: etcd read at {dead}: "), lines
    assert lines[1] == f"{PROMPT}datasource db1 online"
    assert lines[2].startswith(f"ERROR: etcd read at {dead}: "), lines
    assert lines[3] == f"{PROMPT}ls"  # it went on
    assert lines[4].startswith(f"ERROR: etcd read at {dead}: ")
    assert len(lines) == 5 and result.returncode == 1
    assert get(etcd, "datasource/db1") == (None, 0)

    # a dead endpoint first, a live one next: the shell moves on to it
    both = run_shell(etcd, home, ["datasource db1 online"], endpoints=f"{dead},{etcd.endpoints}")
    assert "DataSource 'db1' is now ONLINE" in both.stdout and both.returncode == 0, both.stdout
    assert get(etcd, "datasource/db1")[0] == {"host": "db1", "role": "master", "state": "ONLINE"}


def test_a_decision_on_a_stale_read_writes_nothing(etcd: EtcdCluster, tmp_path: Path) -> None:
    """Someone else writes a datasource key between the shell's read and its write: the
    switch decided on the read is refused, naming the keys, and nothing is written."""
    script = f"""
import asyncio, subprocess, sys
from floatingip.cluster_state import ClusterState, DataSourceRecord
from floatingip.datasource import Role, State
from floatingip.errors import FloatingIPError
from floatingip.etcd_client import EtcdPool, parse_endpoints

async def main():
    state = ClusterState(EtcdPool(parse_endpoints({etcd.endpoints!r}), timeout=5), "demo")
    await state.put_datasource("db1", role="master", state="ONLINE")
    await state.put_datasource("db2", role="slave", state="ONLINE")
    seen = await state.snapshot()
    await state.put_datasource("db3", role="master", state="ONLINE")  # another writer
    switch = [DataSourceRecord("db1", "db1", Role.SLAVE, State.ONLINE),
              DataSourceRecord("db2", "db2", Role.MASTER, State.ONLINE)]
    try:
        await state.put_datasources_if_unchanged(switch, seen)
    except FloatingIPError as exc:
        print("refused:", exc)
    fresh = await state.snapshot()
    print("written:", await state.put_datasources_if_unchanged(switch, fresh) > fresh.revision)

asyncio.run(main())
"""
    result = subprocess.run(
        ["ip", "netns", "exec", etcd.sandbox.namespaces["client"], sys.executable, "-c", script],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "refused: etcd key /floatingip/demo/datasource/: changed since revision" in result.stdout
    ), result.stdout
    assert "written: True" in result.stdout


def test_a_switch_from_the_shell_moves_the_vip_between_agents(tmp_path: Path) -> None:
    """End to end: two agents, a 3-member etcd; `switch to db2` typed in `shell --etcd` on the
    client moves the VIP to db2, and ls shows db2's agent holding it."""
    require_etcd()
    with world() as w:
        start_with_db1_master(w)
        result = subprocess.run(
            ["ip", "netns", "exec", w.sandbox.namespaces["client"], sys.executable, "-m",
             "floatingip", "shell", "--cluster-home", str(w.home), "--cluster", "demo",
             "--etcd", w.etcd.endpoints],
            input="switch to db2\n", capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert "SWITCH TO 'db2' WAS SUCCESSFUL" in result.stdout, result.stdout + result.stderr
        w.wait_for_holder("db2")
        listed = subprocess.run(
            ["ip", "netns", "exec", w.sandbox.namespaces["client"], sys.executable, "-m",
             "floatingip", "shell", "--cluster-home", str(w.home), "--cluster", "demo",
             "--etcd", w.etcd.endpoints],
            input="ls\n", capture_output=True, text=True, timeout=120,
        ).stdout  # fmt: skip
        assert "  master: held on db2 (for db2) since " in listed, listed
        assert w.poll.overlaps == []
