"""`floatingip status` as a health check: its exit code and report against real VIPs in
namespaces (held where the facts say, missing, on the wrong host, on two hosts), and through a
real etcd with real agents."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from floatingip import status_etcd
from floatingip.etcd_client import EtcdPool
from floatingip.patroni_source import PatroniScope
from floatingip.sandbox import Sandbox
from floatingip.status_etcd import etcd_status
from tests.conftest import wait_until
from tests.integration.etcd_world import (
    CLUSTER,
    cluster_home,
    require_etcd,
    start_with_db1_master,
    world,
)
from tests.integration.etcd_world import VIP as ETCD_VIP
from tests.integration.test_etcd_fence_races import HOLDER, bench
from tests.integration.test_reconcile import VIP, add_vip, on, vip_home


def status(*args: str, netns: str | None = None) -> tuple[int, dict[str, Any]]:
    prefix = ["ip", "netns", "exec", netns] if netns is not None else []
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "floatingip", "status", "--json", *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_local_status_exit_codes_against_real_vips(
    sandbox: Sandbox, cluster_home: Path, service_dir: Path
) -> None:
    home = vip_home(cluster_home, service_dir)
    hosts = ["--host", "db1", "--netns", f"db1={sandbox.namespaces['db1']}",
             "--netns", f"db2={sandbox.namespaces['db2']}"]  # fmt: skip
    where = ["--cluster-home", str(home), "--cluster", "demo", *hosts]
    master_online = [*where, "--state", "db1=ONLINE"]

    code, report = status(*master_online)  # the master is ONLINE, the VIP nowhere
    assert code == 4 and report["verdict"] == "missing", report
    (master,) = report["services"]
    assert master["expected_host"] == "db1" and master["held_on"] == []
    assert report["probed"] == ["db1", "db2"]
    assert not on(sandbox, "db1")  # status starts nothing

    add_vip(sandbox, "db1")
    code, report = status(*master_online)
    assert code == 0 and report["verdict"] == "ok", report
    assert report["services"][0]["held_on"] == ["db1"]
    assert report["services"][0]["datasource"] == "db1"

    add_vip(sandbox, "db2")  # two holders
    code, report = status(*master_online)
    assert code == 3 and report["services"][0]["held_on"] == ["db1", "db2"], report
    assert on(sandbox, "db1") and on(sandbox, "db2")  # status stops nothing

    sandbox.run("db1", ["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])  # only the wrong host
    code, report = status(*master_online)
    assert code == 3 and report["services"][0]["why"] == "held on db2; facts: db1", report

    code, report = status(*where)  # every datasource OFFLINE: the facts put it nowhere
    assert code == 3, report
    sandbox.run("db2", ["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])
    code, report = status(*where)
    assert code == 0 and report["services"][0]["why"] == "no ONLINE master", report

    # a host whose state cannot be read: unknown
    sandbox.run("db2", ["ip", "link", "del", "eth0"])
    code, report = status(*master_online)
    assert code == 4, report  # db1 (the master's host) was read: the VIP is missing there
    add_vip(sandbox, "db1")
    code, report = status(*master_online)
    assert code == 5 and report["services"][0]["unreadable"] == ["db2"], report

    text = subprocess.run(
        [sys.executable, "-m", "floatingip", "status", *master_online],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert text.returncode == 5
    assert "master: UNKNOWN: held on db1; the facts: db1" in text.stdout, text.stdout


def test_etcd_status_names_the_holder_and_its_agents_last_repair() -> None:
    """Two agents on a real etcd: the holder lock, the agent's status record, the agent's
    metrics endpoint; then the agents stopped (missing) and a lock on the wrong host."""
    require_etcd()
    with world() as w:
        start_with_db1_master(w)
        client = w.sandbox.namespaces["client"]
        where = ["--cluster-home", str(w.home), "--cluster", CLUSTER, "--etcd", w.etcd.endpoints]
        code, report = status(*where, netns=client)
        assert code == 0, report
        (master,) = report["services"]
        assert master["held_on"] == ["db1"] and master["datasource"] == "db1", report
        assert master["since"] is not None and master["since"] <= time.time()

        # Someone deletes the VIP on db1: the agent's monitor restores it, and says so in etcd.
        w.sandbox.run("db1", ["ip", "addr", "del", f"{ETCD_VIP}/24", "dev", "eth0"])

        def repaired() -> bool:
            report = status(*where, netns=client)[1]
            return bool(report["services"][0]["last_repair"])

        assert wait_until(repaired, timeout=60)
        code, report = status(*where, netns=client)
        assert "drift: expected on db1, found on nowhere" in report["services"][0]["last_repair"]
        assert "(agent of db1," in report["services"][0]["last_repair"]

        for host in w.databases:  # the VIP released, the lock deleted
            assert w.stop_agent(host) == 0
        code, report = status(*where, netns=client)
        assert code == 4 and report["services"][0]["held_on"] == [], report

        holder = json.dumps({"host": "db2", "datasource": "db2", "since": time.time()})
        w.put("service/master/holder", holder)  # by hand: a lock on a host that is not master
        code, report = status(*where, netns=client)
        assert code == 3 and report["services"][0]["held_on"] == ["db2"], report


def test_agent_metrics_show_the_lease_etcd_round_trips_and_the_vip_and_json_logs() -> None:
    pytest.importorskip("prometheus_client")
    require_etcd()
    with world(("db1",)) as w:
        w.put("policy", '{"mode":"AUTOMATIC"}')
        w.set_datasource("db1", "master")
        w.start_agent("db1", extra=("--metrics", "9464", "--log-format", "json"))
        w.wait_for_holder("db1")
        w.set_datasource("db1", "master", "ONLINE")  # once more: a watched change, applied

        def scrape() -> dict[str, float]:
            script = (
                "import urllib.request\n"
                "print(urllib.request.urlopen('http://127.0.0.1:9464/metrics', timeout=10)"
                ".read().decode())"
            )
            found = w.sandbox.run("db1", [sys.executable, "-c", script], timeout=30).stdout
            samples = {}
            for line in found.splitlines():
                if line and not line.startswith("#"):
                    name, _, value = line.rpartition(" ")
                    samples[name] = float(value)
            return samples

        keepalives = 'floatingip_etcd_request_duration_seconds_count{request="lease keepalive"}'

        def seen() -> bool:  # a watched change applied, a lease renewed
            found = scrape()
            lagged = found.get("floatingip_etcd_watch_lag_seconds_count", 0)
            return lagged >= 1 and found.get(keepalives, 0) >= 1

        assert wait_until(seen, timeout=60)
        samples = scrape()
        assert samples["floatingip_etcd_lease_up"] == 1
        assert 0 < samples["floatingip_etcd_lease_remaining_seconds"] <= w.ttl
        assert samples['floatingip_service_held{service="master"}'] == 1
        assert samples['floatingip_transitions_total{direction="up",service="master"}'] == 1
        assert samples["floatingip_etcd_lease_losses_total"] == 0
        assert w.stop_agent("db1") == 0
        lines = [json.loads(line) for line in w.agent_log("db1").splitlines()]  # all JSON
        decisions = [(d["action"], d["result"]) for d in lines if d.get("event") == "decision"]
        assert decisions == [("start", "ok"), ("stop", "ok")], lines  # taken; released on SIGTERM


def patroni_member(role: str) -> str:
    """A member key as Patroni 3.0 writes it (ha.py touch_member), trimmed to what matters."""
    return json.dumps({"conn_url": "postgres://198.51.100.1:5432/postgres", "state": "running",
                       "role": role, "version": "3.0.2"})  # fmt: skip


def test_etcd_status_reads_patroni_keys_as_the_agents_on_them_do() -> None:
    """Agents run with --patroni-scope: `status --etcd --patroni-scope` takes the datasources
    from Patroni's member and leader keys, as the agents do (the cluster home declares none),
    and the holder from floatingip's lock; it follows a leader change."""
    require_etcd()
    with world() as w:
        patroni = ("--patroni-scope", "pg", "--patroni-namespace", "/pgns")

        def put(key: str, value: str) -> None:
            result = w.etcdctl("put", f"/pgns/pg/{key}", value)
            assert result.returncode == 0, result.stderr

        put("members/db1", patroni_member("master"))
        put("members/db2", patroni_member("replica"))
        put("leader", "db1")
        for host in w.databases:
            w.start_agent(host, extra=patroni)
        w.wait_for_holder("db1")
        client = w.sandbox.namespaces["client"]
        where = ["--cluster-home", str(w.home), "--cluster", CLUSTER, "--etcd", w.etcd.endpoints]

        code, report = status(*where, *patroni, netns=client)
        assert code == 0 and report["source"].endswith(", Patroni /pgns/pg/"), report
        (master,) = report["services"]
        assert master["expected_host"] == "db1" and master["expected_datasource"] == "db1"
        assert master["held_on"] == ["db1"] and master["datasource"] == "db1", report
        code, plain = status(*where, netns=client)  # floatingip's own datasource keys: none
        assert code == 3 and plain["services"][0]["why"] == "held on db1; facts: no host", plain

        put("members/db1", patroni_member("replica"))  # a switchover, as Patroni writes it
        put("leader", "db2")
        put("members/db2", patroni_member("master"))
        w.wait_for_holder("db2")
        code, report = status(*where, *patroni, netns=client)
        assert code == 0 and report["services"][0]["held_on"] == ["db2"], report
        assert report["services"][0]["expected_datasource"] == "db2"


def test_etcd_status_reads_patroni_and_floatingip_keys_at_one_moment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --patroni-scope, Patroni's keys and floatingip's were read in two requests: a
    switchover between them (Patroni's leader and floatingip's holder both moved to db2) gave
    the old leader against the new holder, "misplaced", an exit code for a healthy cluster.
    Here the switchover lands right after etcd's first answer: the report is of one moment."""
    with bench() as b:

        def put(key: str, value: str) -> None:
            result = b.etcd.etcdctl("etcd1", "put", key, value)
            assert result.returncode == 0, result.stderr

        def holder(host: str) -> str:
            return json.dumps({"host": host, "datasource": host, "since": time.time()})

        put("/pgns/pg/members/db1", patroni_member("master"))
        put("/pgns/pg/members/db2", patroni_member("replica"))
        put("/pgns/pg/leader", "db1")
        put(HOLDER, holder("db1"))
        answers: list[str] = []

        class Interleaved(EtcdPool):  # the real pool; a switchover after its first answer
            async def call(self, what: str, request: Any, *, timeout: float | None = None) -> Any:
                answer = await super().call(what, request, timeout=timeout)
                answers.append(what)
                if len(answers) == 1:
                    put("/pgns/pg/members/db1", patroni_member("replica"))
                    put("/pgns/pg/leader", "db2")
                    put("/pgns/pg/members/db2", patroni_member("master"))
                    put(HOLDER, holder("db2"))
                return answer

        monkeypatch.setattr(status_etcd, "EtcdPool", Interleaved)
        monkeypatch.setattr(status_etcd, "parse_endpoints", lambda text: (b.proxy.endpoint,))
        home = cluster_home(tmp_path)
        report = etcd_status(home, CLUSTER, "proxy", PatroniScope("pg", "/pgns"))
        assert answers, "etcd was not asked"
        (master,) = report.services
        assert master.verdict == "ok", master
        assert master.held_on == [master.expected_host], master
        report = etcd_status(home, CLUSTER, "proxy", PatroniScope("pg", "/pgns"))  # after it
        (master,) = report.services
        assert master.verdict == "ok" and master.held_on == ["db2"], master
