"""``floatingip check``'s privilege lines: which mode is in force (root, sudo, capabilities) and,
in capability mode, that the capabilities are there and that the commands really inherit them
(a command run through the executor reads its own ``/proc/self/status``)."""

from __future__ import annotations

import shlex
from collections.abc import Iterator

from floatingip import privilege
from floatingip.checks import FAIL, PASS, QUERY_TIMEOUT, WARN, Check
from floatingip.commands import Executor, split_sudo
from floatingip.errors import CommandError
from floatingip.privilege import NEEDED, Capabilities, Privilege
from floatingip.service import ServiceDefinition

__all__ = ["check_privilege"]

_BOTH = " and ".join(NEEDED)
_GIVE = (
    "run it with AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW (`floatingip systemd-unit` "
    "prints such a unit), or setpriv --inh-caps=+net_admin,+net_raw "
    "--ambient-caps=+net_admin,+net_raw; or use --privilege sudo"
)


def check_privilege(services: dict[str, ServiceDefinition], executor: Executor) -> Iterator[Check]:
    mode = privilege.current()
    if mode is Privilege.ROOT:
        yield Check(PASS, "privilege mode: root (this account is root: no sudo, no capabilities)")
        return
    caps = privilege.read_capabilities()
    if mode is Privilege.SUDO:
        what = f"privilege mode: sudo (the VIP commands run through sudo -n){_why(caps)}"
        yield Check(PASS, what)
        return
    missing = privilege.missing_capabilities(caps)
    if missing:
        yield Check(FAIL, "privilege mode: capabilities, but " + "; ".join(missing), _GIVE)
        return
    yield Check(
        PASS, f"privilege mode: capabilities ({_BOTH} in the effective and ambient sets: "
        "the VIP commands run without sudo)",
    )  # fmt: skip
    yield _inherited(executor)
    for name, service in sorted(services.items()):
        for action, argv in service.planned_argvs():
            split = split_sudo(argv)
            if split is None:
                continue
            what = f"{name} {action} runs through sudo in capability mode: {shlex.join(argv)}"
            fix = "write the command without sudo: it inherits the capabilities"
            if service.vip is not None:
                fix = "set vip.sudo=auto: the VIP commands then run without sudo"
            if caps.no_new_privs:  # NoNewPrivileges=yes: setuid sudo cannot become root
                yield Check(FAIL, f"{what} (no_new_privs is set: sudo cannot gain root)", fix)
            else:
                yield Check(WARN, what, fix)


def _why(caps: Capabilities) -> str:
    if privilege.configured() is Privilege.SUDO:
        return " (--privilege sudo)"
    return f"; not capabilities: {'; '.join(privilege.missing_capabilities(caps))}"


def _inherited(executor: Executor) -> Check:
    """A command run as the VIP commands are reads its own capabilities."""
    what = f"a command run from here inherits {_BOTH}"
    try:
        result = executor.run(("cat", "/proc/self/status"), timeout=QUERY_TIMEOUT, check=False)
    except CommandError as exc:
        return Check(FAIL, what, f"cannot run cat: {exc}")
    if not result.ok:
        return Check(FAIL, what, f"cat /proc/self/status failed: {result.last_line}")
    child = privilege.parse_status(result.stdout)
    lost = [name for name in NEEDED if not child.has(name, ambient=False)]
    if lost:
        return Check(FAIL, f"{what}: it has not {', '.join(lost)}", _GIVE)
    return Check(PASS, what)
