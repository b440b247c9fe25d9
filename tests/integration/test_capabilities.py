"""Capability mode for real: ``floatingip`` run by an unprivileged account that holds exactly
CAP_NET_ADMIN and CAP_NET_RAW as ambient capabilities (util-linux setpriv, as systemd's
AmbientCapabilities= gives them) moves the VIP in a sandbox namespace with no sudo anywhere (the
account has no sudoers line), and ``check`` reports the mode; without them, ``check`` says what
is missing and ``shell --privilege capabilities`` refuses to start."""

from __future__ import annotations

import os
import pwd
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import floatingip
from floatingip.rule_files import shipped_rules_dir
from floatingip.sandbox import Sandbox
from tests.conftest import PATIENCE, require_program, wait_until
from tests.integration.conftest import readable_cluster_home

VIP = "192.0.2.22"
SERVICE = f"name=master\nvip.address={VIP}/24\nvip.interface=eth0\nvip.arp.count=1\n"
CAPS = ("--inh-caps=+net_admin,+net_raw", "--ambient-caps=+net_admin,+net_raw")


def _blocked(path: Path) -> tuple[Path, Path] | None:
    """The first directory on ``path`` that other accounts cannot enter, and its child there."""
    for parent, child in zip(path.parents[::-1], [*path.parents[::-1][1:], path], strict=True):
        if not os.stat(parent).st_mode & 0o001:
            return parent, child
    return None


def _readable_interpreter(scratch: Path) -> str:
    """Shell lines that, in a private mount namespace, let any account run this interpreter
    with floatingip: the interpreter may live under /root (pyenv), and the checkout (the venv,
    the package, the shipped rules) in a directory only root may enter (a CI's clone in a
    ``mktemp -d``).  A tmpfs over each closed directory, with just the needed directories bound
    back into it (kept meanwhile in directories under ``scratch``)."""
    needed = {
        Path(os.path.realpath(sys.executable)),
        Path(sys.base_prefix).resolve(),
        Path(sys.prefix).resolve(),  # the venv
        Path(floatingip.__file__).resolve().parent,
        shipped_rules_dir().resolve(),
    }
    closed: dict[Path, set[Path]] = {}
    for path in needed:
        found = _blocked(path)
        if found is not None:
            closed.setdefault(found[0], set()).add(found[1])
    lines = []
    for directory, children in sorted(closed.items()):
        kept = {child: tempfile.mkdtemp(prefix="keep-", dir=scratch) for child in sorted(children)}
        lines += [f"mount --bind {shlex.quote(str(c))} {k}" for c, k in kept.items()]
        lines.append(f"mount -t tmpfs -o mode=0755 tmpfs {shlex.quote(str(directory))}")
        for child, keep in kept.items():
            lines += [
                f"mkdir -p {shlex.quote(str(child))}",
                f"mount --bind {keep} {shlex.quote(str(child))}",
            ]
    return "; ".join(lines) or "true"


def as_user(
    sandbox: Sandbox, user: str, home: Path, args: list[str], *, caps: bool
) -> subprocess.Popen[str]:
    """``floatingip ARGS --cluster-home HOME --cluster demo`` in db1's namespace as ``user``,
    with or without the two capabilities."""
    setpriv = require_program("setpriv", package="util-linux")
    account = pwd.getpwnam(user)
    argv = [
        "ip", "netns", "exec", sandbox.namespaces["db1"],
        setpriv, f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups",
        *(CAPS if caps else ()), "--", sys.executable, "-m", "floatingip", *args,
        "--cluster-home", str(home), "--cluster", "demo",
    ]  # fmt: skip
    script = f"{_readable_interpreter(home)}; exec {shlex.join(argv)}"
    return subprocess.Popen(
        [require_program("unshare", package="util-linux"), "--mount", "--propagation", "private",
         "sh", "-c", script],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "HOME": "/"},
    )  # fmt: skip


def run(
    sandbox: Sandbox, user: str, home: Path, args: list[str], *, caps: bool
) -> tuple[int, str, str]:
    process = as_user(sandbox, user, home, args, caps=caps)
    out, err = process.communicate(timeout=PATIENCE * 4)
    return process.returncode, out, err


def test_with_ambient_capabilities_the_vip_moves_without_sudo(
    sandbox: Sandbox, unprivileged_user: str
) -> None:
    home = readable_cluster_home(SERVICE)
    try:
        code, out, err = run(sandbox, unprivileged_user, home, ["check"], caps=True)
        assert "PASS  privilege mode: capabilities" in out, out + err
        assert "PASS  a command run from here inherits CAP_NET_ADMIN and CAP_NET_RAW" in out, out
        assert "sudo lets" not in out  # no sudo check in this mode
        assert code == 0, out + err

        shell = as_user(
            sandbox, unprivileged_user, home, ["-vv", "shell", "--host", "db1"], caps=True
        )
        try:
            # the log (-vv) stays far below a pipe's 64 KiB: read at the end
            assert shell.stdin is not None
            shell.stdin.write("datasource db1 online\n")
            shell.stdin.flush()
            assert wait_until(lambda: VIP in sandbox.addresses_on("db1")), shell.poll()
            shell.stdin.write("datasource db1 offline\n")
            shell.stdin.flush()
            assert wait_until(lambda: VIP not in sandbox.addresses_on("db1"))
            out, log = shell.communicate(timeout=PATIENCE)
        finally:
            if shell.poll() is None:  # a failed assertion: no account left running
                shell.kill()
                shell.wait()
        assert shell.returncode == 0, out + log
        assert "is now ONLINE" in out and "is now OFFLINE" in out, out
        ran = [line.split("running ", 1)[1] for line in log.splitlines() if "running " in line]
        # the probe (another host's datasource cannot be seen), the address, ARP, its removal
        for program in ("dad.py", "ip addr add", "arping -U", "ip addr del"):
            assert any(program in line for line in ran), (program, ran)
        assert not [line for line in ran if "sudo" in line], ran
        assert "FAIL" not in out and "failed" not in out.lower(), out
    finally:
        subprocess.run(["rm", "-rf", str(home)], check=False)


def test_without_the_capabilities_check_says_what_is_missing(
    sandbox: Sandbox, unprivileged_user: str
) -> None:
    home = readable_cluster_home(SERVICE)
    try:
        code, out, err = run(sandbox, unprivileged_user, home, ["check"], caps=False)
        assert "PASS  privilege mode: sudo" in out, out + err
        assert "CAP_NET_ADMIN is not in the effective set" in out, out
        assert "FAIL  sudo lets" in out  # auto fell back to sudo, which has no line here

        code, out, err = run(
            sandbox, unprivileged_user, home, ["check", "--privilege", "capabilities"], caps=False
        )  # fmt: skip
        assert code == 1
        assert "FAIL  privilege mode: capabilities, but CAP_NET_ADMIN is not in" in out, out
        assert "AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW" in out, out

        code, out, err = run(
            sandbox, unprivileged_user, home,
            ["shell", "--host", "db1", "--privilege", "capabilities"], caps=False,
        )  # fmt: skip
        assert code == 1 and out == "", out
        assert "--privilege capabilities, but CAP_NET_ADMIN is not in the effective set" in err
        assert VIP not in sandbox.addresses_on("db1")
    finally:
        subprocess.run(["rm", "-rf", str(home)], check=False)
