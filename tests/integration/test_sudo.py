"""Real sudo for a real unprivileged account: fails fast without a sudoers entry, runs with one."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from floatingip import CommandError, LocalExecutor, command_argv
from tests.conftest import require_program, require_root
from tests.test_commands import processes_with


@pytest.fixture
def unprivileged_user() -> Iterator[str]:
    require_root()
    require_program("sudo")
    useradd = require_program("useradd")
    name = f"fip{uuid.uuid4().hex[:8]}"
    subprocess.run([useradd, "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)


@pytest.fixture
def sudoers(unprivileged_user: str) -> Iterator[Callable[[str], None]]:
    path = Path("/etc/sudoers.d") / f"floatingip-test-{unprivileged_user}"

    def grant(line: str) -> None:
        staged = path.with_name(path.name + ".new")  # sudo skips names containing '.'
        staged.write_text(line + "\n")
        staged.chmod(0o440)
        subprocess.run(["visudo", "-c", "-q", "-f", str(staged)], check=True)
        staged.rename(path)

    yield grant
    path.unlink(missing_ok=True)


def run_as(user: str, command: str, timeout: float) -> dict[str, object]:
    """Run ``command`` through LocalExecutor in a child process that has become ``user``."""
    account = pwd.getpwnam(user)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root for good, then run the command the library's way
        os.close(reader)
        outcome: dict[str, object]
        try:
            os.setgroups([])
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
            started = time.monotonic()
            try:
                result = LocalExecutor(kill_grace=0.5).run(command_argv(command), timeout=timeout)
                outcome = {"error": None, "exit_code": result.exit_code, "stdout": result.stdout}
            except CommandError as exc:
                outcome = {
                    "error": type(exc).__name__,
                    "message": str(exc),
                    "exit_code": exc.exit_code,
                    "stderr": exc.stderr,
                }
            outcome["elapsed"] = time.monotonic() - started
        except BaseException as exc:
            outcome = {"error": "crash", "message": repr(exc)}
        finally:
            with os.fdopen(writer, "w") as pipe:
                json.dump(outcome, pipe)
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    outcome = json.loads(data)
    assert outcome["error"] != "crash", outcome
    return outcome  # type: ignore[no-any-return]


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
