"""A command run under a process.Cancel is stopped when the cancel is given (the announcement
of a VIP whose start was undone), and reported as killed, not as timed out."""

from __future__ import annotations

import contextvars
import threading
from pathlib import Path

from floatingip.commands import LocalExecutor
from floatingip.process import Cancel
from tests.conftest import PATIENCE, wait_until


def test_a_cancel_stops_a_running_command_and_it_is_not_a_timeout(tmp_path: Path) -> None:
    cancel = Cancel()
    running = tmp_path / "running"
    results = []

    def run() -> None:
        with cancel.applies():
            command = ["sh", "-c", 'echo > "$0"; exec sleep 600', str(running)]
            results.append(LocalExecutor().run(command, timeout=600, check=False))

    worker = threading.Thread(target=contextvars.copy_context().run, args=(run,))
    worker.start()
    assert wait_until(running.exists)
    cancel.cancel("the verify failed")
    worker.join(PATIENCE)
    assert not worker.is_alive()  # not 600 s
    (result,) = results
    assert not result.ok and not result.timed_out and result.exit_code == -15  # SIGTERM
    cancel.close()


def test_a_command_under_a_given_cancel_never_starts(tmp_path: Path) -> None:
    cancel = Cancel()
    cancel.cancel("the start was undone")
    with cancel.applies():
        result = LocalExecutor().run(["touch", str(tmp_path / "ran")], check=False)
    assert not result.ok and result.stderr == "not started: the start was undone"
    assert not (tmp_path / "ran").exists()
    cancel.close()
    cancel.cancel("again")  # after close: nothing, no error


def test_commands_outside_the_cancel_are_not_affected() -> None:
    cancel = Cancel()
    cancel.cancel("not for them")
    assert LocalExecutor().run(["true"]).ok
    cancel.close()
