"""A dual-stack VIP through real sudo, for a real unprivileged account: the lines `floatingip
sudoers` prints let it probe both addresses, add both (ip -6 ... nodad) and send the neighbour
advertisements; without the advertisement's line the VIP is still taken, and the failure is a
warning that names sudo's refusal."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

from floatingip import LocalExecutor, Manager, load_services
from floatingip.sandbox import Sandbox
from floatingip.sudoers import sudo_commands, sudoers_lines
from tests.integration.conftest import (
    call_as,
    enter_network_namespace,
    printed_sudoers,
    readable_cluster_home,
)

SERVICE = (
    "name=master\nvip.address=192.0.2.22/24, 2001:db8::22/64\nvip.interface=eth0\n"
    "vip.arp.count=0\nvip.na.count=1\n"
)


def test_the_printed_lines_let_an_account_take_and_announce_an_ipv6_vip(
    sandbox: Sandbox, unprivileged_user: str, sudoers: Callable[[str], None]
) -> None:
    # db2 (datasource file: host db2) runs where this manager cannot look: the probe must run
    home = readable_cluster_home(SERVICE)
    user = unprivileged_user

    def go_online() -> dict[str, Any]:
        with Manager.from_cluster_home(
            home, "demo", rules_dir=home / "rules", host="db1", monitor_interval=0
        ) as manager:
            result = manager.update_datasource("db1", state="ONLINE")
            manager.wait_for_announcements(timeout=30)
            shown = LocalExecutor().run(["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
            return {
                "ok": result.ok,
                "errors": result.errors,
                "present": ["2001:db8::22/64" in shown, "192.0.2.22/24" in shown],
                "events": [(e.kind, e.message) for e in manager.history],
            }

    def as_user() -> dict[str, Any]:
        namespace = sandbox.namespaces["db1"]
        return call_as(user, go_online, before=lambda: enter_network_namespace(namespace))  # type: ignore[no-any-return]

    try:
        printed = printed_sudoers(home, user)
        assert "ip -6 addr add 2001\\:db8\\:\\:22/64 dev eth0 nodad" in printed
        commands = sudo_commands(load_services(home, "demo"))
        without = [command for command in commands if "--advertise" not in command.args]
        assert len(without) == len(commands) - 1
        sudoers("\n".join(sudoers_lines(without, user=user)))
        warned = as_user()
        assert warned["ok"] is True and warned["present"] == [True, True], warned["errors"]
        (warning,) = [m for kind, m in warned["events"] if "advertisements" in m]
        assert "neighbour advertisements failed" in warning and "password" in warning

        sudoers(printed)
        taken = as_user()
        assert taken["ok"] is True and taken["present"] == [True, True], taken["errors"]
        (sent,) = [(kind, m) for kind, m in taken["events"] if "advertisements" in m]
        assert sent[0] == "announce" and "--advertise 1 2001:db8::22" in sent[1], sent
    finally:
        shutil.rmtree(home)
