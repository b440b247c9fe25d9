"""One manager driving db1 and db2, and db1 dies: its executor fails every command (its namespace
and processes are gone, as ssh to a powered-off host fails) or hangs (each command until its
timeout).  The manager says db1 is unreachable, never takes the VIP on db2 merely because of
that, moves it once db1 is declared dead (fenced), and handles db1's return safely."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from floatingip import Manager
from floatingip.commands import LocalExecutor, NamespaceExecutor
from floatingip.errors import HostUnreachableError
from floatingip.sandbox import Sandbox
from tests.conftest import PATIENCE, require_program, wait_until, write_service
from tests.integration.conftest import FOLLOW_DEADLINE

VIP = "192.0.2.22"
PORT = 3306
# A hung command outlives every test below: the manager must not wait for it.
HUNG_TIMEOUT = 600


def write_home(home: Path) -> Path:
    service_dir = home / "conf/cluster/demo/service"
    write_service(
        service_dir,
        "master.properties",
        f"name=master\nvip.address={VIP}/24\nvip.interface=eth0\nvip.arp.count=2\n"
        f"command.timeout={HUNG_TIMEOUT}\n",
    )
    datasource_dir = service_dir.parent / "datasource"
    datasource_dir.mkdir(mode=0o755)
    write_service(datasource_dir, "db1.properties", "name=db1\nrole=master\n")
    write_service(datasource_dir, "db2.properties", "name=db2\nrole=slave\n")
    return home


@pytest.fixture
def world(sandbox: Sandbox, cluster_home: Path) -> Iterator[tuple[Sandbox, Path]]:
    require_program("arping", package="iputils-arping")
    sandbox.start_server("db1", PORT)
    sandbox.start_server("db2", PORT)
    yield sandbox, write_home(cluster_home)


def holders(sandbox: Sandbox, *hosts: str) -> list[str]:
    return [host for host in hosts or ("db1", "db2") if VIP in sandbox.addresses_on(host)]


def kill_host(sandbox: Sandbox, host: str) -> None:
    """db1 dies: every process in its namespace killed, the namespace deleted (its interfaces
    and the VIP go with it)."""
    namespace = sandbox.namespaces[host]
    pids = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True, check=True
    ).stdout.split()
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "delete", namespace], check=True)


def manager_for(home: Path, executors: dict[str, NamespaceExecutor]) -> Manager:
    return Manager.from_cluster_home(
        home, "demo", host="coordinator", executors=executors,
        states={"db1": "ONLINE", "db2": "ONLINE"}, monitor_interval=0,
    )  # fmt: skip


def test_a_dead_host_is_reported_and_the_vip_moves_once_it_is_declared_dead(
    world: tuple[Sandbox, Path],
) -> None:
    sandbox, home = world
    executors = {host: sandbox.executor(host) for host in ("db1", "db2")}
    with manager_for(home, executors) as manager:
        assert manager.held == {"master": "db1"} and holders(sandbox) == ["db1"]
        kill_host(sandbox, "db1")

        failed = manager.update_datasource("db1", state="FAILED")
        (stop,) = failed.commands
        assert not stop.ok and isinstance(stop.error, HostUnreachableError), stop.error
        message = str(stop.error)
        assert "cannot reach host 'db1'" in message and sandbox.namespaces["db1"] in message
        assert "vip.interface" not in message
        assert manager.unreachable.keys() == {"db1"}
        # unreachable is not dead: the VIP may still be on db1, so db2 does not take it
        assert manager.held == {"master": "db1"}
        blocked = manager.update_datasource("db1", role="slave")
        promoted = manager.update_datasource("db2", role="master")
        assert all(outcome.host != "db2" for outcome in blocked.commands + promoted.commands)
        assert holders(sandbox, "db2") == []
        manager.update_datasource("db2", role="slave")
        manager.update_datasource("db1", role="master")

        declared = manager.declare_dead("db1")
        assert declared.ok, declared.errors
        assert manager.dead.keys() == {"db1"} and manager.held == {}
        switched = manager.switch(to="db2")
        assert switched.ok, [step.errors for step in switched.steps]
        assert manager.held == {"master": "db2"} and holders(sandbox, "db2") == ["db2"]
        assert wait_until(lambda: sandbox.ask("client", VIP, PORT) == "db2", FOLLOW_DEADLINE)
        ran_on = {outcome.host for step in switched.steps for outcome in step.commands}
        assert ran_on == {"db2"}  # nothing is sent to a host declared dead

        # db1 cannot come back while it cannot be reached: it stays dead
        refused = manager.declare_alive("db1")
        assert not refused.ok and manager.dead.keys() == {"db1"}
        assert "cannot reach host 'db1'" in str(refused.errors[0])
        assert manager.held == {"master": "db2"} and holders(sandbox, "db2") == ["db2"]


def hanging_path(tmp_path: Path) -> tuple[str, Path]:
    """A PATH whose `ip` hangs while the returned flag file exists (as ssh to a host that drops
    every packet): it writes its pid to the flag, then sleeps."""
    wrapper_dir = tmp_path / "hang"
    wrapper_dir.mkdir()
    flag = tmp_path / "hanging"
    real_ip = subprocess.run(["which", "ip"], capture_output=True, text=True).stdout.strip()
    wrapper = wrapper_dir / "ip"
    wrapper.write_text(
        f"#!/bin/sh\nif [ -e {flag} ]; then echo $$ >> {flag}; exec sleep {HUNG_TIMEOUT}; fi\n"
        f'exec {real_ip} "$@"\n'
    )
    wrapper.chmod(0o755)
    return f"{wrapper_dir}:{os.environ.get('PATH', os.defpath)}", flag


def hanging_executor(sandbox: Sandbox, host: str, tmp_path: Path) -> tuple[NamespaceExecutor, Path]:
    """An executor into ``host`` whose transport hangs while the flag exists (hanging_path)."""
    path, flag = hanging_path(tmp_path)
    inner = LocalExecutor(env={"PATH": path})
    return NamespaceExecutor(sandbox.namespaces[host], inner=inner), flag


def hung_commands(flag: Path) -> list[int]:
    if not flag.exists():
        return []
    pids = [int(word) for word in flag.read_text().split()]
    return [pid for pid in pids if os.path.exists(f"/proc/{pid}")]


def test_a_hanging_host_does_not_hold_the_manager_and_comes_back_safely(
    world: tuple[Sandbox, Path], tmp_path: Path
) -> None:
    sandbox, home = world
    db1, flag = hanging_executor(sandbox, "db1", tmp_path)
    with manager_for(home, {"db1": db1, "db2": sandbox.executor("db2")}) as manager:
        assert manager.held == {"master": "db1"} and holders(sandbox) == ["db1"]
        flag.touch()  # db1 stops answering; the VIP is still up there

        failed = manager.update_datasource("db1", state="FAILED")
        (stop,) = failed.commands
        assert isinstance(stop.error, HostUnreachableError), stop.error
        assert "cannot reach host 'db1'" in str(stop.error)
        assert hung_commands(flag), "the stop should still be hanging on db1"
        assert manager.held == {"master": "db1"}
        # the cluster manager fences db1 (here: its link goes down, as a power-off would)
        subprocess.run(["ip", "-n", sandbox.namespaces["db1"], "link", "set", "eth0", "down"],
                       check=True)  # fmt: skip
        manager.update_datasource("db1", role="slave")
        assert manager.declare_dead("db1").ok
        promoted = manager.update_datasource("db2", role="master")
        assert promoted.ok, promoted.errors
        assert manager.held == {"master": "db2"} and "db2" in holders(sandbox)
        assert wait_until(lambda: sandbox.ask("client", VIP, PORT) == "db2", FOLLOW_DEADLINE)
        # all of it while db1's command still hangs: no lock was held through its timeout
        assert hung_commands(flag)

        # db1 comes back with the VIP still on it: declared alive, it loses it before anything
        for pid in hung_commands(flag):
            os.kill(pid, signal.SIGKILL)
        flag.unlink()
        assert wait_until(lambda: not manager.unreachable, PATIENCE), manager.unreachable
        alive = manager.declare_alive("db1")
        assert alive.ok, alive.errors
        assert manager.dead == {} and holders(sandbox) == ["db2"]
        subprocess.run(["ip", "-n", sandbox.namespaces["db1"], "link", "set", "eth0", "up"],
                       check=True)  # fmt: skip
        assert manager.held == {"master": "db2"}
        assert wait_until(lambda: sandbox.ask("client", VIP, PORT) == "db2", FOLLOW_DEADLINE)


def test_the_shell_reports_a_hung_host_after_unreachable_after_seconds_and_goes_on(
    world: tuple[Sandbox, Path], tmp_path: Path
) -> None:
    """`floatingip shell --unreachable-after 1.5`: db1 stops answering; the stop there is
    reported unreachable after 1.5 s (not the default 5, not command.timeout), the VIP stays
    believed on db1, and the shell answers the next command while db1's command still hangs."""
    sandbox, home = world
    path, flag = hanging_path(tmp_path)
    shell = subprocess.Popen(
        [
            sys.executable, "-m", "floatingip", "shell", "--cluster-home", str(home),
            "--cluster", "demo", "--host", "coordinator", "--monitor", "0",
            "--netns", f"db1={sandbox.namespaces['db1']}",
            "--netns", f"db2={sandbox.namespaces['db2']}",
            "--state", "db1=ONLINE", "--state", "db2=ONLINE", "--unreachable-after", "1.5",
        ],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PATH": path, "HOME": "/nonexistent"},
    )  # fmt: skip
    assert shell.stdin is not None and shell.stdout is not None
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(shell.stdout or ()), daemon=True)
    reader.start()
    try:
        shell.stdin.write("ls\n")
        shell.stdin.flush()
        assert wait_until(lambda: "master: held on db1 (for db1)" in "".join(seen)), seen
        flag.touch()  # db1 stops answering; the VIP is still up there
        shell.stdin.write("datasource db1 fail\ndead\n")
        shell.stdin.flush()
        assert wait_until(lambda: "db1: UNREACHABLE" in "".join(seen)), "".join(seen)
        assert hung_commands(flag), "db1's stop should still be hanging"  # nobody waited for it
        shell.stdin.close()
        assert shell.wait(timeout=PATIENCE) == 1  # the failure counted
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait()
        for pid in hung_commands(flag):
            os.kill(pid, signal.SIGKILL)
        reader.join(PATIENCE)
        shell.stdin.close()
        shell.stdout.close()
    text = "".join(seen)
    assert "ERROR: master stop on db1: cannot reach host 'db1'" in text, text
    assert "db1: UNREACHABLE (no answer within 1.5 s" in text, text
    assert holders(sandbox) == ["db1"]  # unreachable is not dead: nothing moved
