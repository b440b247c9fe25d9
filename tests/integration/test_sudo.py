"""Real sudo for a real unprivileged account: fails fast without a sudoers entry, runs with one."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import Any

from floatingip import CommandError, LocalExecutor, Manager
from floatingip.commands import command_argv
from floatingip.sandbox import Sandbox
from tests.conftest import PATIENCE, require_program, wait_until
from tests.integration.conftest import (
    call_as,
    enter_network_namespace,
    printed_sudoers,
    readable_cluster_home,
)
from tests.test_commands import processes_with, sleep_marker


def run_as(user: str, command: str, timeout: float) -> dict[str, Any]:
    """Run ``command`` through LocalExecutor as ``user``; what happened, as a dict."""

    def run() -> dict[str, Any]:
        started = time.monotonic()
        try:
            result = LocalExecutor(kill_grace=0.5).run(command_argv(command), timeout=timeout)
            outcome: dict[str, Any] = {"error": None, "exit_code": result.exit_code}
            outcome["stdout"] = result.stdout
        except CommandError as exc:
            outcome = {
                "error": type(exc).__name__,
                "message": str(exc),
                "exit_code": exc.exit_code,
                "stderr": exc.stderr,
            }
        outcome["elapsed"] = time.monotonic() - started
        return outcome

    return call_as(user, run)  # type: ignore[no-any-return]


def test_without_a_sudoers_entry_sudo_fails_fast_with_a_clear_error(unprivileged_user: str) -> None:
    outcome = run_as(unprivileged_user, f"sudo {require_program('id')} -u", timeout=10)
    assert outcome["error"] == "CommandError"
    assert outcome["elapsed"] < PATIENCE  # -n: no wait for a password (sudo would wait 5 min)
    assert "a password is required" in str(outcome["stderr"])
    assert "NOPASSWD sudoers entry" in str(outcome["message"])


def test_with_a_nopasswd_entry_the_command_runs_as_root(
    unprivileged_user: str, sudoers: Callable[[str], None]
) -> None:
    id_program = require_program("id")
    sudoers(f"{unprivileged_user} ALL=(root) NOPASSWD: {id_program}")
    outcome = run_as(unprivileged_user, f"sudo {id_program} -u", timeout=10)
    assert outcome["error"] is None, outcome
    assert outcome["stdout"] == "0\n"
    # Only the granted binary: anything else is still refused.
    refused = run_as(unprivileged_user, f"sudo {require_program('cat')} /etc/shadow", timeout=10)
    assert refused["error"] == "CommandError"


def test_a_hanging_sudo_command_is_killed_at_the_timeout(
    unprivileged_user: str, sudoers: Callable[[str], None]
) -> None:
    sleep = require_program("sleep")
    sudoers(f"{unprivileged_user} ALL=(root) NOPASSWD: {sleep}")
    marker = sleep_marker()
    outcome = run_as(unprivileged_user, f"sudo {sleep} {marker}", timeout=0.5)
    assert outcome["error"] == "CommandTimeout", outcome
    assert float(str(outcome["elapsed"])) < PATIENCE  # returned at the timeout, not at the end
    assert wait_until(lambda: processes_with(marker) == []), "the root-owned command survived"


def test_an_unprivileged_manager_moves_the_vip_with_exactly_the_printed_lines(
    sandbox: Sandbox, unprivileged_user: str, sudoers: Callable[[str], None]
) -> None:
    """The manager runs as an ordinary account on db1; sudo holds exactly `floatingip sudoers`."""
    require_program("arping", package="iputils-arping")
    home = readable_cluster_home(
        "name=master\nvip.address=192.0.2.22/24\nvip.interface=eth0\nvip.label=eth0:0\n"
        "vip.arp.count=1\n"
    )
    namespace = sandbox.namespaces["db1"]

    def as_user(states: list[str]) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            started = time.monotonic()
            with Manager.from_cluster_home(
                home, "demo", rules_dir=home / "rules", host="db1"
            ) as manager:
                results = [manager.update_datasource("db1", state=state) for state in states]
                manager.wait_for_announcements(timeout=PATIENCE)
                shown = LocalExecutor().run(["ip", "-o", "-4", "addr", "show", "dev", "eth0"])
                outcome = {
                    "ok": [result.ok for result in results],
                    "errors": [error for result in results for error in result.errors],
                    "held": dict(manager.held),
                    "present": "192.0.2.22/24" in shown.stdout,
                    "warnings": [e.message for e in manager.history if e.kind == "warning"],
                    "elapsed": time.monotonic() - started,
                }
            return outcome

        return call_as(  # type: ignore[no-any-return]
            unprivileged_user, run, before=lambda: enter_network_namespace(namespace)
        )

    try:
        refused = as_user(["ONLINE"])
        assert refused["ok"] == [False] and refused["held"] == {}
        assert "a password is required" in refused["errors"][0]
        assert "floatingip sudoers" in refused["errors"][0]
        assert refused["elapsed"] < PATIENCE  # sudo -n: no wait for a password (5 min)
        assert "192.0.2.22" not in sandbox.addresses_on("db1")

        sudoers(printed_sudoers(home, unprivileged_user))
        online = as_user(["ONLINE"])
        assert online["ok"] == [True], online["errors"]
        assert online["present"] and online["held"] == {"master": "db1"}
        assert online["warnings"] == []  # arping ran through sudo too
        assert "192.0.2.22" not in sandbox.addresses_on("db1")  # the failsafe, through sudo
        offline = as_user(["ONLINE", "OFFLINE"])
        assert offline["ok"] == [True, True], offline["errors"]
        assert not offline["present"] and offline["held"] == {}
    finally:
        shutil.rmtree(home)
