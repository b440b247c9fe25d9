"""Real sudo for a real unprivileged account: fails fast without a sudoers entry, runs with one."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from floatingip import CommandError, LocalExecutor, command_argv
from tests.conftest import require_program
from tests.integration.conftest import call_as
from tests.test_commands import processes_with


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
    assert outcome["elapsed"] < 3  # -n: no wait for a password
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
    marker = f"{uuid.uuid4().int % 10**6}.789"
    outcome = run_as(unprivileged_user, f"sudo {sleep} {marker}", timeout=0.5)
    assert outcome["error"] == "CommandTimeout", outcome
    assert float(str(outcome["elapsed"])) < 3
    deadline = time.monotonic() + 3
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker) == [], "the root-owned command survived the timeout"
