"""A Patroni callback that outlives Patroni's kill must not undo the callback after it.

Patroni runs one callback at a time: before starting the next it kills the one still running,
"including child processes", and if that fails it does not wait (patroni/postgresql/
callback_executor.py, cancellable.py: ``Failed to kill child process`` is only logged).  With
``floatingip hook patroni`` called through ``sudo -n`` as the README shows, Patroni (account
postgres) can kill sudo but not the hook, which runs as root.  Seen with real Patroni 3.0.2 when
the leader's postmaster is killed with -9 (test_hook_patroni.py): ``on_role_change replica``
(the read-only restart) is still running when ``on_role_change master`` (the promotion) starts;
the replica hook goes on and, when it got the lock after the master hook (it was slower to
start, on a loaded host), used to release the VIP from the promoted primary, with nothing to take
it back until Patroni's next callback.  Now each Patroni call records its process's start under
the lock, and a call that finds a later one recorded does nothing (floatingip/hooks/order.py).
This replays that order deterministically, the slow hook held by SIGSTOP.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from pathlib import Path

from floatingip.sandbox import Sandbox
from tests.conftest import PATIENCE, require_program, require_root, wait_until
from tests.integration.test_hook_repmgr import hook_workspace
from tests.integration.test_hooks_contract import VIP


def callback(
    sandbox: Sandbox, hook: str, action: str, role: str, host: str = "db1", *options: str
) -> subprocess.Popen[bytes]:
    """The hook line as Patroni runs it on ``host``: as postgres, ACTION ROLE SCOPE appended;
    the process Patroni starts (and kills) is sudo itself (setpriv and ip netns exec exec it).
    Its output goes to the test's (shown when it fails)."""
    return subprocess.Popen(
        ["ip", "netns", "exec", sandbox.namespaces[host],
         "setpriv", "--reuid", "postgres", "--regid", "postgres", "--init-groups",
         *shlex.split(hook), *options, "--host", host, action, role, "demo"],
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.name.isdigit() and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def ended(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


def test_a_replica_callback_patroni_could_not_kill_leaves_the_primary_its_vip() -> None:
    require_root()
    require_program("setpriv", package="util-linux")
    require_program("sudo", package="sudo")
    with hook_workspace("patroni") as (_, hook), Sandbox(["db1", "db2"]) as sandbox:
        assert callback(sandbox, hook, "on_start", "master").wait(timeout=120) == 0
        assert VIP in sandbox.addresses_on("db1")

        # on_role_change replica: its hook is slow to start (held stopped here) ...
        stale = callback(sandbox, hook, "on_role_change", "replica")
        assert wait_until(lambda: children(stale.pid) != [], PATIENCE)
        hook_pid = children(stale.pid)[0]
        os.kill(hook_pid, signal.SIGSTOP)
        # ... when Patroni promotes: it kills the running callback, sudo; the hook (root) lives
        os.kill(stale.pid, signal.SIGKILL)
        stale.wait(timeout=30)
        assert callback(sandbox, hook, "on_role_change", "master").wait(timeout=120) == 0
        assert VIP in sandbox.addresses_on("db1")

        os.kill(hook_pid, signal.SIGCONT)  # the old hook goes on
        assert wait_until(lambda: ended(hook_pid), 120)
        assert VIP in sandbox.addresses_on("db1"), "the primary lost its VIP to a stale callback"


def test_a_master_callback_cancelled_while_it_waits_for_the_release_gives_way() -> None:
    # db2's on_role_change master waits (holding db2's hook lock) for db1 to let the VIP go;
    # Patroni makes db2 a replica again before db1 does: the cancelled master call must neither
    # keep the replica call out of the lock nor take the VIP on db2 once db1 lets it go.
    require_root()
    require_program("setpriv", package="util-linux")
    require_program("sudo", package="sudo")
    with hook_workspace("patroni") as (work, hook), Sandbox(["db1", "db2"]) as sandbox:
        assert callback(sandbox, hook, "on_start", "master").wait(timeout=120) == 0
        waiting = callback(
            sandbox, hook, "on_role_change", "master", "db2", "--wait-for-release", "300"
        )
        assert wait_until(lambda: children(waiting.pid) != [], PATIENCE)
        hook_pid = children(waiting.pid)[0]
        lock = work / "locks" / "floatingip-demo-db2.lock"
        assert wait_until(lambda: f"pid {hook_pid}:" in _text(lock), PATIENCE), "not waiting"
        os.kill(waiting.pid, signal.SIGKILL)  # Patroni cancels it: sudo dies, the hook lives
        waiting.wait(timeout=30)
        replica = callback(
            sandbox, hook, "on_role_change", "replica", "db2", "--lock-timeout", "60"
        )
        assert replica.wait(timeout=120) == 0, "the replica call did not get the lock"
        assert wait_until(lambda: ended(hook_pid), 120), "the cancelled call still waits"
        assert callback(sandbox, hook, "on_stop", "master").wait(timeout=120) == 0  # db1 lets go
        assert VIP not in sandbox.addresses_on("db1")
        assert VIP not in sandbox.addresses_on("db2"), "the VIP is on a replica"


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
