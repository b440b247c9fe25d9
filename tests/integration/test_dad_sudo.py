"""Duplicate address detection through real sudo, for a real unprivileged account: without the
probe's sudoers line the VIP is not taken (fail closed) and `floatingip check` says why; with the
lines `floatingip sudoers` prints, it is taken."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from typing import Any

import pytest

from floatingip import LocalExecutor, Manager, load_services
from floatingip.dad import PROBE_SCRIPT
from floatingip.preflight import run_checks
from floatingip.sandbox import Sandbox
from floatingip.sudoers import sudo_commands, sudoers_lines
from tests.integration.conftest import (
    call_as,
    enter_network_namespace,
    printed_sudoers,
    readable_cluster_home,
)

VIP = "192.0.2.22/24"
SERVICES = {
    "classic": (
        "name=master\n"
        f"command.start=sudo ip addr add {VIP} dev eth0 label eth0:0\n"
        f"command.stop=sudo ip addr del {VIP} dev eth0\n"
        "command.status=ip -o addr show dev eth0\n"
    ),
    "vip": f"name=master\nvip.address={VIP}\nvip.interface=eth0\nvip.arp.count=0\n",
}


@pytest.mark.parametrize("kind", sorted(SERVICES))
def test_without_the_probe_line_the_vip_is_not_taken_and_check_says_why(
    sandbox: Sandbox, unprivileged_user: str, sudoers: Callable[[str], None], kind: str
) -> None:
    # db2 (datasource file: host db2) runs where this manager cannot look: the probe must run
    home = readable_cluster_home(SERVICES[kind])
    namespace = sandbox.namespaces["db1"]
    user = unprivileged_user

    def as_user(function: Callable[[], Any]) -> Any:
        return call_as(user, function, before=lambda: enter_network_namespace(namespace))

    def go_online() -> dict[str, Any]:
        with Manager.from_cluster_home(
            home, "demo", rules_dir=home / "rules", host="db1", monitor_interval=0
        ) as manager:
            result = manager.update_datasource("db1", state="ONLINE")
            shown = LocalExecutor().run(["ip", "-o", "-4", "addr", "show", "dev", "eth0"])
            return {
                "ok": result.ok,
                "errors": result.errors,
                "held": dict(manager.held),
                "present": VIP in shown.stdout,
                "problems": dict(manager.problems),
                "failed_events": [e.message for e in manager.history if not e.ok],
            }

    def check() -> list[tuple[str, str, str]]:
        checks = run_checks(home, "demo", rules_dir=home / "rules")
        return [(c.verdict, c.what, c.fix) for c in checks]

    try:
        commands = sudo_commands(load_services(home, "demo"))
        assert any(PROBE_SCRIPT in command.args for command in commands)
        without_probe = [command for command in commands if PROBE_SCRIPT not in command.args]
        sudoers("\n".join(sudoers_lines(without_probe, user=user)))

        refused = as_user(go_online)
        assert refused["ok"] is False and refused["held"] == {} and not refused["present"]
        (error,) = refused["errors"]
        assert "not taking 192.0.2.22" in error and "duplicate address check" in error
        assert "a password is required" in error and "floatingip sudoers" in error
        assert "duplicate address check" in refused["problems"]["master"]
        assert any("not taking" in message for message in refused["failed_events"])
        assert VIP not in "".join(sandbox.addresses_on("db1"))
        failed = [line for line in as_user(check) if line[0] == "FAIL"]
        assert any(PROBE_SCRIPT in what for _, what, _ in failed), failed

        sudoers(printed_sudoers(home, user))
        taken = as_user(go_online)
        assert taken["ok"] is True, taken["errors"]
        assert taken["present"] and taken["held"] == {"master": "db1"}
        checks = as_user(check)
        # This test's interpreter lives under /root, which the test account cannot read (sudo
        # runs it as root); a real account's manager runs an interpreter it can read.
        unreadable = f"program {sys.executable!r} exists"
        assert not [c for c in checks if c[0] == "FAIL" and unreadable not in c[1]], checks
        assert any("duplicate address probe" in what for _, what, _ in checks), checks
    finally:
        shutil.rmtree(home)
