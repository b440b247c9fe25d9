"""A command never outlives its manager: killed with -9 mid-command, the manager's slow
`ip addr add` must not land afterwards (it would give the VIP a second holder)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from floatingip import LocalExecutor, Manager
from floatingip.sandbox import Sandbox
from tests.conftest import PATIENCE, require_program
from tests.integration.conftest import enter_network_namespace, readable_cluster_home
from tests.test_commands import processes_with

VIP = "192.0.2.22"
SLEEP = 3.0  # how long the command waits before adding the address (a slow sudo/PAM, say)


def slow_add_script(directory: Path, marker: str) -> Path:
    """A root-owned script that sleeps, then adds the address; ``marker``: how long it sleeps."""
    script = directory / "slow-add"
    script.write_text(f'#!/bin/sh\nsleep {marker}\nexec ip addr add "$1" dev "$2"\n')
    script.chmod(0o755)
    directory.chmod(0o755)
    return script


def crash_mid_command(
    namespace: str, home: Path, user: str | None, helper: bool
) -> tuple[int, int | None]:
    """Fork a manager for db1 (as ``user``, or root) that starts the VIP from a worker thread;
    return its pid once the start command is running.  The caller kills it.  With ``helper``
    the manager first forks a process that outlives it (as programs using fork do), and its pid
    is returned too."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the manager: never returns into pytest
        try:
            os.close(reader)
            enter_network_namespace(namespace)
            if user is not None:
                account = pwd.getpwnam(user)
                os.setgroups([])
                os.setgid(account.pw_gid)
                os.setuid(account.pw_uid)
            import threading

            helper_pid = 0
            if helper:
                LocalExecutor().run(["true"])  # commands have run before the fork
                helper_pid = os.fork()
                if helper_pid == 0:
                    time.sleep(60)
                    os._exit(0)
            manager = Manager.from_cluster_home(
                home, "demo", rules_dir=home / "rules", host="db1", monitor_interval=0
            )
            worker = threading.Thread(
                target=manager.update_datasource, args=("db1",), kwargs={"state": "ONLINE"}
            )
            worker.start()
            os.write(writer, b"started %d\n" % helper_pid)
            worker.join()
            os.write(writer, b"finished\n")  # too late: the test kills it before this
            time.sleep(60)
        finally:
            os._exit(1)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        word, helper_pid = pipe.readline().split()
    assert word == b"started"
    return pid, int(helper_pid) or None


@pytest.mark.parametrize(
    ("user", "sudo", "helper"),
    [(False, False, False), (False, True, False), (True, True, False), (False, True, True)],
    ids=["root-direct", "root-sudo", "unprivileged-sudo", "root-sudo-forked-helper"],
)
def test_a_manager_killed_mid_command_leaves_no_command_behind(
    sandbox: Sandbox, request: pytest.FixtureRequest, user: bool, sudo: bool, helper: bool
) -> None:
    marker = f"{SLEEP:.0f}.{uuid.uuid4().int % 10**6}"
    scripts = Path(tempfile.mkdtemp(prefix="floatingip-orphan-"))
    script = slow_add_script(scripts, marker)
    prefix = "sudo " if sudo else ""
    home = readable_cluster_home(
        f"name=master\ncommand.start={prefix}{script} {VIP}/24 eth0\n"
        f"command.stop={prefix}{require_program('ip')} addr del {VIP}/24 dev eth0\n"
        "command.timeout=30\n"
    )
    account = None
    if user:
        account = request.getfixturevalue("unprivileged_user")
        grant: Callable[[str], None] = request.getfixturevalue("sudoers")
        grant(f"{account} ALL=(root) NOPASSWD: {script}")
    helper_pid = None
    try:
        manager, helper_pid = crash_mid_command(sandbox.namespaces["db1"], home, account, helper)
        deadline = time.monotonic() + 20
        while not processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert processes_with(marker), "the start command did not begin"
        os.kill(manager, signal.SIGKILL)
        os.waitpid(manager, 0)
        killed = time.monotonic()
        # Until nothing of the command is left (sudo, the script, its sleep, an `ip addr add` it
        # may have exec'd) the address must never appear; after that nothing can add it.
        while processes_with(marker) or processes_with(str(script)) or processes_with(f"{VIP}/"):
            assert VIP not in sandbox.addresses_on("db1"), "an orphaned command took the VIP"
            assert time.monotonic() < killed + PATIENCE, "the command outlived its manager"
            time.sleep(0.05)
        assert VIP not in sandbox.addresses_on("db1"), "an orphaned command took the VIP"
    finally:
        if helper_pid is not None:
            os.kill(helper_pid, signal.SIGKILL)  # not our child: init reaps it
        shutil.rmtree(home)
        shutil.rmtree(scripts)
