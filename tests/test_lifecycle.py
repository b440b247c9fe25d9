"""floatingip.lifecycle: start-up, a start that fails, and the gate of a closed manager."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from floatingip import CommandResult, Manager
from floatingip.errors import ManagerClosedError
from floatingip.testing import RecordingExecutor
from tests.test_manager import actions


def supervisor_threads(cluster: str = "demo") -> set[threading.Thread]:
    name = f"floatingip-supervisor-{cluster}"
    return {thread for thread in threading.enumerate() if thread.name == name}


def test_the_supervisor_starts_only_once_the_manager_is_built(demo_home: Path) -> None:
    """It started first: with a short interval its monitor ran on a half-built manager
    (AttributeError: no attribute '_unprobeable')."""
    before = supervisor_threads()
    seen_running: list[tuple[str, ...]] = []

    def respond(argv: tuple[str, ...]) -> CommandResult:
        if supervisor_threads() - before:
            seen_running.append(argv)
        return CommandResult(argv, 0)

    manager = Manager.from_cluster_home(
        demo_home, "demo", host="db1", executor=RecordingExecutor(respond), monitor_interval=0.05
    )
    assert manager.history and seen_running == []  # the reconcile at start ran without it
    assert supervisor_threads() - before  # and it runs now
    manager.close()


def test_a_failed_construction_leaves_no_supervisor_running(demo_home: Path) -> None:
    """10 failed constructions left 10 threads calling into the dead managers (here: Ctrl-C
    during the reconcile at start, which nothing in floatingip catches)."""
    before = supervisor_threads()

    def respond(argv: tuple[str, ...]) -> CommandResult:
        raise KeyboardInterrupt  # Ctrl-C while the manager starts

    for _ in range(10):
        with pytest.raises(KeyboardInterrupt):
            Manager.from_cluster_home(
                demo_home, "demo", host="db1", executor=RecordingExecutor(respond)
            )
    deadline = time.monotonic() + 30
    while supervisor_threads() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert supervisor_threads() - before == set()


def test_a_construction_that_fails_after_taking_the_vip_releases_it(demo_home: Path) -> None:
    """Ctrl-C at the last step of construction: the VIP taken at start must not stay behind
    with no manager (and no failsafe) left to release it."""
    recorder = RecordingExecutor()

    class Interrupt(logging.Handler):
        def handle(self, record: logging.LogRecord) -> bool:
            if record.getMessage().startswith("manager for cluster"):
                raise KeyboardInterrupt
            return True

    before = supervisor_threads()
    handler, log = Interrupt(), logging.getLogger("floatingip.lifecycle")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with pytest.raises(KeyboardInterrupt):
            Manager.from_cluster_home(
                demo_home, "demo", host="db1", executor=recorder, states={"db1": "ONLINE"}
            )
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert actions(recorder) == ["start", "stop"]
    assert supervisor_threads() - before == set()


def test_a_closed_manager_raises_manager_closed_error(demo_home: Path) -> None:
    manager = Manager.from_cluster_home(demo_home, "demo", host="db1", executor=RecordingExecutor())
    manager.close()
    for call in (
        lambda: manager.update_datasource("db1", state="ONLINE"),
        lambda: manager.recover("db1"),
        lambda: manager.welcome("db1"),
        lambda: manager.run_service("master", "status"),
    ):
        with pytest.raises(ManagerClosedError, match="the manager of cluster 'demo' is closed"):
            call()
