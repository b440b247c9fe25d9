"""Prometheus metrics scraped over HTTP, for real, after real VIP moves between namespaces."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from floatingip import Manager
from floatingip.sandbox import Sandbox
from tests.conftest import PATIENCE, wait_until
from tests.integration.test_reconcile import VIP, add_vip, on, vip_home

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from floatingip.metrics import Exporter  # noqa: E402

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=PATIENCE) as reply:
        text = reply.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_follow_a_real_vip_move_a_repair_and_a_failure(
    sandbox: Sandbox, cluster_home: Path, service_dir: Path
) -> None:
    home = vip_home(cluster_home, service_dir)
    exporter = Exporter(("127.0.0.1", 0))
    try:
        with Manager.from_cluster_home(
            home,
            "demo",
            host="db1",
            executor=sandbox.executor("db1"),
            executors={"db2": sandbox.executor("db2")},
            monitor_interval=0,
        ) as manager:
            exporter.follow(manager)
            before = scrape(exporter.port)
            assert value(before, "floatingip_service_held", service="master") == 0
            assert value(before, "floatingip_service_held_since_seconds", service="master") is None
            assert (
                value(before, "floatingip_transitions_total", service="master", direction="up") == 0
            )

            taken = time.time()
            assert manager.update_datasource("db1", state="ONLINE").ok
            assert on(sandbox, "db1")
            first = scrape(exporter.port)
            assert value(first, "floatingip_service_held", service="master") == 1
            since = value(first, "floatingip_service_held_since_seconds", service="master")
            assert since is not None and taken - 1 <= since <= time.time()
            assert (
                value(first, "floatingip_transitions_total", service="master", direction="up") == 1
            )
            starts = value(
                first, "floatingip_command_duration_seconds_count", service="master", action="start"
            )
            assert starts == 1
            assert (value(first, "floatingip_command_duration_seconds_sum", service="master",
                          action="start") or 0) > 0  # fmt: skip

            manager.update_datasource("db2", state="ONLINE")
            assert manager.switch("db2").ok  # the VIP moves to db2's namespace
            assert on(sandbox, "db2") and not on(sandbox, "db1")
            moved = scrape(exporter.port)
            assert (
                value(moved, "floatingip_transitions_total", service="master", direction="down")
                == 1
            )
            assert (
                value(moved, "floatingip_transitions_total", service="master", direction="up") == 2
            )
            assert value(moved, "floatingip_service_held", service="master") == 1
            later = value(moved, "floatingip_service_held_since_seconds", service="master")
            assert later is not None and later >= since

            # someone deletes the VIP on db2: reconcile restores it and counts a repair
            sandbox.run("db2", ["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])
            manager.reconcile()
            assert on(sandbox, "db2")
            repaired = scrape(exporter.port)
            assert value(repaired, "floatingip_repairs_total", service="master") == 1

            # a stray copy on db1: removed, a second repair
            add_vip(sandbox, "db1")
            manager.reconcile()
            assert wait_until(lambda: not on(sandbox, "db1"))
            assert value(scrape(exporter.port), "floatingip_repairs_total", service="master") == 2
        closed = scrape(exporter.port)  # closed: the failsafe released it
        assert value(closed, "floatingip_service_held", service="master") == 0
        assert (
            value(closed, "floatingip_transitions_total", service="master", direction="down") == 2
        )
        assert not any(
            name == "floatingip_command_failures_total" and v > 0 for (name, _), v in closed.items()
        )
    finally:
        exporter.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_shell_metrics_on_a_bare_port_listen_on_localhost_and_count_a_failure(
    sandbox: Sandbox, cluster_home: Path, service_dir: Path
) -> None:
    home = vip_home(cluster_home, service_dir)
    port = free_port()
    shell = subprocess.Popen(
        [
            sys.executable, "-m", "floatingip", "shell", "--cluster-home", str(home),
            "--cluster", "demo", "--host", "db1", "--monitor", "0",
            "--netns", f"db1={sandbox.namespaces['db1']}", "--metrics", str(port),
        ],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert wait_until(lambda: _answers(port) or shell.poll() is not None)
        assert shell.poll() is None, "the shell stopped"
        listening = subprocess.run(
            ["ss", "-Htln", f"sport = :{port}"], capture_output=True, text=True, check=True
        ).stdout.split()
        assert f"127.0.0.1:{port}" in listening  # a bare port: localhost only
        # the VIP's interface is gone on db1: the start fails (the ip command exits non-zero)
        sandbox.run("db1", ["ip", "link", "set", "eth0", "down"])
        assert shell.stdin is not None
        shell.stdin.write("datasource db1 online\n")
        shell.stdin.flush()

        def failed() -> float | None:  # the duplicate address probe exits non-zero
            found = scrape(port)
            labels = {"service": "master", "action": "start", "reason": "exit-status"}
            return value(found, "floatingip_command_failures_total", **labels)

        assert wait_until(lambda: (failed() or 0) >= 1)
        assert value(scrape(port), "floatingip_service_held", service="master") == 0
    finally:
        shell.communicate(timeout=60)  # closes its input: the shell stops
    assert not _answers(port)  # the endpoint closed with the shell


def _answers(port: int) -> bool:
    try:
        scrape(port)
        return True
    except OSError:
        return False
