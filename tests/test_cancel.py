"""A command run under a process.Cancel is stopped when the cancel is given (the announcement
of a VIP whose start was undone), and reported as killed, not as timed out."""

from __future__ import annotations

import contextvars
import select
import threading
from pathlib import Path

import pytest

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


def test_a_cancel_closed_while_its_command_runs_does_not_spin_the_waiting_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The announce thread closes its Cancel when the host guard gives up on the command
    (hosts.GuardedExecutor._bounded), while the worker thread still waits for it.  The closed
    pipe used to answer POLLNVAL at once, unhandled: the wait looped at full CPU until the
    command's timeout (and a reused fd number could have woken it).  Counted: the waits."""
    polls: list[int] = []
    real = select.poll

    class Counted:  # the real poller, its waits counted
        def __init__(self) -> None:
            self.inner = real()

        def register(self, fd: int, events: int) -> None:
            self.inner.register(fd, events)

        def unregister(self, fd: int) -> None:
            self.inner.unregister(fd)

        def poll(self, timeout: int) -> list[tuple[int, int]]:
            polls.append(timeout)
            return self.inner.poll(timeout)

    monkeypatch.setattr(select, "poll", Counted)
    cancel, running, results = Cancel(), tmp_path / "running", []

    def run() -> None:
        with cancel.applies():
            script = 'echo > "$0"; while [ -e "$0" ]; do sleep 0.05; done'
            results.append(LocalExecutor().run(["sh", "-c", script, str(running)], timeout=600))

    worker = threading.Thread(target=contextvars.copy_context().run, args=(run,))
    worker.start()
    assert wait_until(running.exists)
    cancel.close()  # the owner is done with it; the command goes on
    wait_until(lambda: len(polls) > 10_000, 2.0)  # a spin gets there in far less
    running.unlink()
    worker.join(PATIENCE)
    assert not worker.is_alive()
    (result,) = results
    assert result.ok, result
    assert len(polls) < 100, f"{len(polls)} waits for one command"
    cancel.cancel("after close: nothing, no error")
