"""The hooks' contracts, replayed against real hosts: each tool's exact invocation (the argument
lines its source builds, run the way it runs them: Patroni without a shell, repmgr and MHA
through ``sh -c``, orchestrator through bash) of ``floatingip hook`` moves a real VIP between
network namespaces, in the order the tool calls them; the VIP is never on two hosts."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from floatingip.hooks.core import HookLock, lock_path
from floatingip.sandbox import Sandbox
from floatingip.testing import write_cluster_home
from tests.conftest import REPO, require_program, require_root, wait_until

VIP = "192.0.2.22"
PORT = 5432
SERVICE = """\
name=master
vip.address=192.0.2.22/24
vip.interface=eth0
vip.arp.count=1
"""


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    require_root()
    require_program("ip", package="iproute2")
    require_program("arping", package="iputils-arping")
    with Sandbox(["db1", "db2", "client", "mgr"]) as sandbox:
        yield World(sandbox, tmp_path)


class World:
    """Two database hosts with a server each, a client, a manager host (MHA's, orchestrator's),
    and the cluster home they share."""

    def __init__(self, sandbox: Sandbox, tmp_path: Path) -> None:
        self.sandbox = sandbox
        self.home = write_cluster_home(
            tmp_path,
            services={"master": SERVICE},
            datasources={"db1": "name=db1\nrole=master\n", "db2": "name=db2\nrole=slave\n"},
        )
        self.locks = tmp_path
        for host in ("db1", "db2"):
            sandbox.start_server(host, PORT)

    def floatingip(self, tool: str, *options: str) -> str:
        """The command line a tool's configuration names (before the tool's own arguments)."""
        argv = [sys.executable, "-m", "floatingip", "hook", tool, "--cluster-home",
                str(self.home), "--lock-dir", str(self.locks), *options]  # fmt: skip
        return shlex.join(argv)

    def netns_options(self, *hosts: str) -> list[str]:
        return [f"--netns={host}={self.sandbox.namespaces[host]}" for host in hosts]

    def on(self, host: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` on ``host`` (inside its namespace), as the tool there would."""
        return subprocess.run(
            ["ip", "netns", "exec", self.sandbox.namespaces[host], *argv],
            capture_output=True, text=True, timeout=120, cwd=REPO,
        )  # fmt: skip

    def holders(self) -> list[str]:
        return [host for host in ("db1", "db2") if VIP in self.sandbox.addresses_on(host)]

    def client_reaches(self) -> str | None:
        return self.sandbox.ask("client", VIP, PORT, timeout=5)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stderr


# -- Patroni: shlex.split(callback) + [action, role, scope], run without a shell ------------


def patroni(
    world: World, host: str, action: str, role: str, *options: str
) -> subprocess.CompletedProcess[str]:
    callback = world.floatingip("patroni", "--host", host, *options)
    return world.on(host, [*shlex.split(callback), action, role, "demo"])


def test_patroni_callbacks_move_the_vip_through_a_switchover(world: World) -> None:
    assert "db1: it is the primary" in ok(patroni(world, "db1", "on_start", "primary"))
    assert world.holders() == ["db1"]
    assert world.client_reaches() == "db1"
    ok(patroni(world, "db2", "on_start", "replica"))
    assert world.holders() == ["db1"]
    # patronictl switchover: the leader demotes first, then the candidate promotes
    assert "master stop on db1 ok" in ok(patroni(world, "db1", "on_role_change", "replica"))
    assert world.holders() == []
    assert "master start on db2 ok" in ok(patroni(world, "db2", "on_role_change", "primary"))
    assert world.holders() == ["db2"]
    assert world.client_reaches() == "db2"
    # the same callback again (Patroni's on_start at its restart, say): nothing changes
    assert "nothing ran; db2 holds master" in ok(patroni(world, "db2", "on_start", "primary"))
    assert world.holders() == ["db2"]
    ok(patroni(world, "db2", "on_stop", "primary"))
    assert world.holders() == []


def test_a_promotion_waits_for_the_old_primary_to_release_the_vip(world: World) -> None:
    """Patroni releases the leader key before the old primary's on_stop callback has run: the
    new primary's callback waits for the VIP to be released, then takes it."""
    ok(patroni(world, "db1", "on_role_change", "master"))  # Patroni < 4 says master
    callback = world.floatingip("patroni", "-v", "--host", "db2")
    promoted = subprocess.Popen(
        ["ip", "netns", "exec", world.sandbox.namespaces["db2"], *shlex.split(callback),
         "on_role_change", "primary", "demo"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    assert promoted.stderr is not None
    with promoted, promoted.stderr:
        lines = []
        for line in promoted.stderr:  # refused once at least: db1 still answers
            lines.append(line)
            if "another host still holds it" in line:
                break
        ok(patroni(world, "db1", "on_stop", "demoted"))
        lines += promoted.stderr.readlines()
    assert promoted.returncode == 0, "".join(lines)
    assert "master start on db2 ok, after" in lines[-1] and "failed attempt" in lines[-1]
    assert world.holders() == ["db2"]


def test_a_promotion_while_the_old_primary_still_holds_the_vip_is_refused(world: World) -> None:
    ok(patroni(world, "db1", "on_role_change", "master"))
    refused = patroni(world, "db2", "on_role_change", "primary", "--wait-for-release", "0")
    assert refused.returncode == 1
    assert "FAILED" in refused.stderr and "another host still holds it" in refused.stderr
    assert refused.stderr.count("\n") >= 1 and "Traceback" not in refused.stderr
    assert world.holders() == ["db1"]  # never two holders
    ok(patroni(world, "db1", "on_stop", "master"))
    ok(patroni(world, "db2", "on_role_change", "primary"))  # Patroni calls again: it moves
    assert world.holders() == ["db2"]


def test_bad_callback_arguments_change_nothing(world: World) -> None:
    ok(patroni(world, "db1", "on_start", "primary"))
    for action, role in [("on_role_change", "leader"), ("on_start", "")]:
        bad = patroni(world, "db1", action, role)
        assert bad.returncode == 1
        assert "ERROR: unknown Patroni role" in bad.stderr and len(bad.stderr.splitlines()) == 1
    callback = world.floatingip("patroni", "--host", "db3")
    unknown_host = world.on("db1", [*shlex.split(callback), "on_stop", "primary", "demo"])
    assert unknown_host.returncode == 1 and "no datasource is named or hosted at 'db3'" in (
        unknown_host.stderr
    )
    assert world.holders() == ["db1"]


def test_concurrent_callbacks_are_serialized(world: World) -> None:
    """Two callbacks at once on one host: while the lock is taken both wait in the kernel
    (/proc/locks lists them); released, one starts the VIP and the other finds it held (or,
    started earlier, gives way to the later one)."""
    lock = lock_path(world.locks, "demo", "db1")
    callback = [*shlex.split(world.floatingip("patroni", "--host", "db1"))]
    argv = ["ip", "netns", "exec", world.sandbox.namespaces["db1"], *callback]
    with HookLock(lock, 5, "the test"):
        callers = [
            subprocess.Popen(
                [*argv, "on_role_change", "primary", "demo"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                cwd=REPO,
            )
            for _ in range(2)
        ]
        inode = lock.stat().st_ino
        assert wait_until(lambda: waiters(inode) == 2), "the hooks did not wait for the lock"
        assert world.holders() == []  # nothing happened while the lock was held
    lines = [caller.communicate(timeout=120)[1] for caller in callers]
    assert [caller.returncode for caller in callers] == [0, 0], lines
    assert sum("master start on db1 ok" in line for line in lines) == 1, lines
    # the other finds it held, or (forked a clock tick earlier) gives way to the later call, as
    # a callback Patroni cancelled does (floatingip/hooks/order.py)
    other = ("nothing ran; db1 holds master", "nothing done: a later call")
    assert sum(any(text in line for text in other) for line in lines) == 1, lines
    assert world.holders() == ["db1"]


def waiters(inode: int) -> int:
    """Processes blocked on a flock of the file with ``inode`` ("->" lines of /proc/locks)."""
    text = Path("/proc/locks").read_text()
    return len(
        re.findall(rf"-> FLOCK\s+ADVISORY\s+WRITE\s+\d+\s+[0-9a-f]+:[0-9a-f]+:{inode} ", text)
    )


def test_a_hook_that_waits_too_long_gives_up_and_changes_nothing(world: World) -> None:
    lock = lock_path(world.locks, "demo", "db1")
    with HookLock(lock, 5, "the test"):
        callback = world.floatingip("patroni", "--host", "db1", "--lock-timeout", "0.5")
        result = world.on("db1", [*shlex.split(callback), "on_start", "primary", "demo"])
    assert result.returncode == 1
    assert "still holds" in result.stderr and "the test" in result.stderr
    assert world.holders() == []


# -- repmgr: placeholders replaced in event_notification_command, run by system() -----------


def repmgr(world: World, host: str, node: int, event: str, success: bool) -> int:
    """repmgr's _create_event: %n %e %s %t %d replaced (details with double quotes escaped),
    the line run by /bin/sh -c on the node."""
    configured = world.floatingip("repmgr", "--cluster", "demo", "--host", host)
    configured += ' %n %e %s "%t" "%d"'
    details = f'node {node} "{event}"'.replace('"', '\\"')
    line = configured
    for placeholder, value in [
        ("%n", str(node)), ("%e", event), ("%s", "1" if success else "0"),
        ("%t", "2026-11-28 01:00:00.1+00"), ("%d", details),
    ]:  # fmt: skip
        line = line.replace(placeholder, value)
    result = world.on(host, ["/bin/sh", "-c", line])
    assert "Traceback" not in result.stderr and result.stderr.startswith("floatingip hook repmgr:")
    return result.returncode


def test_repmgr_switchover_moves_the_vip_in_repmgrs_order(world: World) -> None:
    assert repmgr(world, "db1", 1, "primary_register", True) == 0
    assert repmgr(world, "db2", 2, "standby_register", True) == 0
    assert world.holders() == ["db1"]
    # repmgr standby switchover on db2: db1 stopped, db2 promoted (db1 still has the VIP)...
    assert repmgr(world, "db2", 2, "standby_promote", True) == 1  # logged by repmgr, no more
    assert world.holders() == ["db1"]
    assert repmgr(world, "db1", 1, "node_rejoin", True) == 0  # ...db1 rejoins as a standby...
    assert world.holders() == []
    assert repmgr(world, "db2", 2, "standby_switchover", True) == 0  # ...and db2 takes it
    assert world.holders() == ["db2"]
    assert world.client_reaches() == "db2"
    assert repmgr(world, "db2", 2, "repmgrd_start", True) == 0
    assert repmgr(world, "db2", 2, "standby_switchover", True) == 0  # the same again
    assert world.holders() == ["db2"]


def test_repmgrd_failover_promote_takes_the_vip_of_a_dead_primary(world: World) -> None:
    assert repmgr(world, "db1", 1, "primary_register", True) == 0
    world.sandbox.run("db1", ["ip", "link", "set", "eth0", "down"])  # db1 is gone
    assert repmgr(world, "db2", 2, "repmgrd_failover_promote", True) == 0
    assert "db2" in world.holders()
    assert world.client_reaches() == "db2"


# -- MHA: options appended to the configured script, run by system() on the manager host ----


def mha(world: World, command: str, *, reach: tuple[str, ...] = ("db1", "db2")) -> int:
    """The exact lines of mha4mysql-manager 0.58 (MasterFailover.pm, MasterRotate.pm,
    MasterMonitor.pm), db1 the original master, db2 the new one."""
    script = world.floatingip("mha", "--cluster", "demo", *world.netns_options(*reach))
    orig = "--orig_master_host=db1 --orig_master_ip=192.0.2.11 --orig_master_port=3306"
    new = "--new_master_host=db2 --new_master_ip=192.0.2.12 --new_master_port=3306"
    passwords = "--orig_master_password='s3cret' --new_master_password='s3cret'"
    lines = {
        "status": f"{script} --command=status --ssh_user=root {orig} ",
        "stopssh": f"{script} {orig} --command=stopssh --ssh_user=root  ",
        "stop": f"{script} {orig} --command=stop ",
        "start": f"{script} --command=start --ssh_user=root {orig} {new} --new_master_user='mha' "
        "  --new_master_password='s3cret'",
        "online_stop": f"{script} --command=stop {orig} --orig_master_user='mha' {new} "
        "--new_master_user='mha' --orig_master_ssh_user=root --new_master_ssh_user=root "
        f"  --orig_master_is_new_slave {passwords}",
        "online_start": f"{script} --command=start {orig} --orig_master_user='mha' {new} "
        "--new_master_user='mha' --orig_master_ssh_user=root --new_master_ssh_user=root "
        f"  --orig_master_is_new_slave {passwords}",
    }
    result = world.on("mgr", ["/bin/sh", "-c", lines[command]])
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr
    return result.returncode


def test_mha_online_switch_and_failover(world: World) -> None:
    ok(patroni(world, "db1", "on_start", "primary"))  # db1 holds the VIP to begin with
    assert mha(world, "status") == 0
    assert mha(world, "online_stop") == 0
    assert world.holders() == []
    assert mha(world, "online_start") == 0
    assert world.holders() == ["db2"]
    assert world.client_reaches() == "db2"
    # and back, as a failover: MHA reaches the dead master by ssh (stopssh), then starts
    world.sandbox.run("db2", ["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])
    ok(patroni(world, "db1", "on_start", "primary"))
    assert mha(world, "stopssh") == 0 and world.holders() == []
    assert mha(world, "start") == 0 and world.holders() == ["db2"]
    assert mha(world, "start") == 0 and world.holders() == ["db2"]  # again: nothing changes


def test_mha_stop_on_an_unreachable_master_says_proceed_and_start_checks(world: World) -> None:
    ok(patroni(world, "db1", "on_start", "primary"))
    assert mha(world, "stop", reach=("db2",)) == 10  # MHA logs it and goes on
    assert world.holders() == ["db1"]
    assert mha(world, "start", reach=("db2",)) == 1  # db1 still answers: refused
    assert world.holders() == ["db1"]


# -- orchestrator: {placeholders} replaced as text, the line run by bash --------------------


def orchestrator(world: World, hook: str, successor: str | None) -> int:
    configured = world.floatingip("orchestrator", "--cluster", "demo",
                                  *world.netns_options("db1", "db2"), hook) + (
        " --failure-type '{failureType}' --failed-host '{failedHost}'"
        " --successor-host '{successorHost}' --is-successful '{isSuccessful}'"
    )  # fmt: skip
    line = configured.replace("{failureType}", "DeadMaster").replace("{failedHost}", "db1")
    line = line.replace("{isSuccessful}", "true" if successor else "false")
    if successor is not None:  # orchestrator replaces {successorHost} only when there is one
        line = line.replace("{successorHost}", successor)
    result = world.on("mgr", ["bash", "-c", line])
    assert result.stderr.startswith("floatingip hook orchestrator:"), result.stderr
    return result.returncode


def test_orchestrator_graceful_takeover_moves_the_vip(world: World) -> None:
    ok(patroni(world, "db1", "on_start", "primary"))
    assert orchestrator(world, "PreGracefulTakeoverProcesses", "db2") == 0
    assert world.holders() == []
    assert orchestrator(world, "PreFailoverProcesses", None) == 0
    for hook in ("PostMasterFailoverProcesses", "PostFailoverProcesses",
                 "PostGracefulTakeoverProcesses"):  # fmt: skip
        assert orchestrator(world, hook, "db2") == 0
        assert world.holders() == ["db2"]
    assert world.client_reaches() == "db2"


def test_orchestrator_without_a_successor_leaves_the_vip_alone(world: World) -> None:
    ok(patroni(world, "db1", "on_start", "primary"))
    assert orchestrator(world, "PostUnsuccessfulFailoverProcesses", None) == 0
    assert orchestrator(world, "PostFailoverProcesses", None) == 0
    assert world.holders() == ["db1"]


def test_runs_never_leave_a_hook_process(world: World) -> None:
    """Each hook is one-shot: after a run, nothing of it (its watchdog included) is left."""
    ok(patroni(world, "db1", "on_start", "primary"))

    def gone() -> bool:
        listed = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        return str(world.home) not in listed

    assert wait_until(gone)
