"""Fixtures for tests on real network namespaces."""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from floatingip.rules import install_rules
from floatingip.sandbox import PREFIX, Sandbox
from tests.conftest import require_program, require_root

CLONE_NEWNET = 0x40000000

# Without gratuitous ARP a client keeps sending to the old MAC until its kernel's ARP entry goes
# stale and is resolved again: 49 s measured here, and at least 23 s by Linux's defaults (15 s
# reachable, 5 s delay, 3 unicast probes).  With it, the client follows in about 0.1 s
# (benchmarks/vip_move.py).  This deadline separates the two, with room for a loaded machine.
FOLLOW_DEADLINE = 10.0


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    require_root()
    require_program("ip", package="iproute2")
    with Sandbox(["db1", "db2", "client"]) as sandbox:
        yield sandbox


def sandbox_namespaces(pid: int) -> set[str]:
    """The sandbox namespaces that process ``pid`` made (their names carry it): other runs on
    the machine, such as another checkout's tests, come and go meanwhile."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names = {line.split()[0] for line in listed.splitlines() if line.strip()}
    return {name for name in names if name.startswith(f"{PREFIX}-{pid}-")}


@pytest.fixture
def unprivileged_user() -> Iterator[str]:
    """A fresh account with no sudo rights, removed afterwards."""
    require_root()
    require_program("sudo", package="sudo")
    useradd = require_program("useradd", package="passwd")
    userdel = require_program("userdel", package="passwd")
    name = f"fip{uuid.uuid4().hex[:8]}"
    subprocess.run([useradd, "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        yield name
    finally:
        subprocess.run([userdel, name], check=False)


@pytest.fixture
def sudoers(unprivileged_user: str) -> Iterator[Callable[[str], None]]:
    """grant(text): install sudoers text for the test's user (checked by visudo first)."""
    path = Path("/etc/sudoers.d") / f"floatingip-test-{unprivileged_user}"
    visudo = require_program("visudo", package="sudo")

    def grant(text: str) -> None:
        staged = path.with_name(path.name + ".new")  # sudo skips names containing '.'
        staged.write_text(text.rstrip("\n") + "\n")
        staged.chmod(0o440)
        subprocess.run([visudo, "-c", "-q", "-f", str(staged)], check=True)
        staged.rename(path)

    yield grant
    path.unlink(missing_ok=True)


def call_as(
    user: str, function: Callable[[], Any], *, before: Callable[[], None] | None = None
) -> Any:
    """Call ``function`` in a child process that has become ``user``; return its JSON result.

    A fork, not a new interpreter: the child needs no access to this interpreter's files.
    ``before`` runs in the child while it is still root (to enter a network namespace).
    """
    account = pwd.getpwnam(user)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        try:
            if before is not None:
                before()
            os.setgroups([])
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
            outcome = {"value": function()}
        except BaseException as exc:
            outcome = {"crash": repr(exc)}
        finally:
            with os.fdopen(writer, "w") as pipe:
                json.dump(outcome, pipe)
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    outcome = json.loads(data)
    assert "crash" not in outcome, outcome
    return outcome["value"]


def enter_network_namespace(namespace: str) -> None:
    """Move the calling process (a forked child) into a network namespace made by `ip netns`."""
    libc = ctypes.CDLL(None, use_errno=True)
    descriptor = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(descriptor, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))
    finally:
        os.close(descriptor)


def readable_cluster_home(service: str) -> Path:
    """A cluster home (cluster demo: service master; db1 master, db2 slave) and a copy of the
    shipped rules, under a directory every account can read (pytest's are private to root)."""
    home = Path(tempfile.mkdtemp(prefix="floatingip-test-"))
    for directory in ("conf/cluster/demo/service", "conf/cluster/demo/datasource"):
        (home / directory).mkdir(parents=True)
    (home / "conf/cluster/demo/service/master.properties").write_text(service)
    (home / "conf/cluster/demo/datasource/db1.properties").write_text("name=db1\nrole=master\n")
    (home / "conf/cluster/demo/datasource/db2.properties").write_text("name=db2\nrole=slave\n")
    install_rules(home / "rules")
    for path in [home, *home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return home


def printed_sudoers(cluster_home: Path, user: str) -> str:
    """What `floatingip sudoers --user USER` prints for the cluster demo of ``cluster_home``."""
    return subprocess.run(
        [sys.executable, "-m", "floatingip", "sudoers", "--cluster-home", str(cluster_home),
         "--cluster", "demo", "--user", user],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
