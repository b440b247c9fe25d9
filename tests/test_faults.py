"""Faults: commands that fail, hang or are missing are recorded, reported, retried with bounded
backoff, and never stop the manager."""

from __future__ import annotations

import io
import time
from pathlib import Path

from floatingip import CommandResult, Event, Manager
from floatingip.shell import Shell
from floatingip.supervisor import RetryPolicy
from floatingip.testing import RecordingExecutor
from tests.conftest import PATIENCE, wait_until, write_service

START = ("sudo", "-n", "ip", "addr", "add", "192.0.2.22/24", "dev", "eth0", "label", "eth0:0")


def test_a_failed_start_is_retried_with_backoff_until_it_works(demo_home: Path) -> None:
    failures = {"left": 2}

    def respond(argv: tuple[str, ...]) -> CommandResult:
        if argv == START and failures["left"]:
            failures["left"] -= 1
            return CommandResult(argv, 2, stderr="RTNETLINK answers: Operation not permitted\n")
        return CommandResult(argv, 0)

    events: list[Event] = []
    with Manager.from_cluster_home(
        demo_home,
        "demo",
        host="db1",
        executor=RecordingExecutor(respond),
        monitor_interval=0,
        # half a second before the first retry: ample time to look at the state it leaves,
        # even on a loaded machine
        retry=RetryPolicy(initial=0.5, maximum=0.5, attempts=5),
    ) as manager:
        manager.add_listener(events.append)
        result = manager.update_datasource("db1", state="ONLINE")
        assert not result.ok and manager.held == {}
        assert "Operation not permitted" in manager.problems["master"]
        assert "retry 1/5" in manager.problems["master"]
        # held, then the problem forgotten: the retry's thread does one after the other
        assert wait_until(
            lambda: manager.held == {"master": "db1"} and "master" not in manager.problems
        ), manager.history
    kinds = [event.kind for event in events]
    assert kinds.count("retry") == 2
    assert [e.ok for e in events if e.kind == "command"] == [False, False, True, True]  # + failsafe


def test_retries_are_bounded_and_a_later_change_still_applies(demo_home: Path) -> None:
    def respond(argv: tuple[str, ...]) -> CommandResult:
        if argv == START:
            return CommandResult(argv, 1, stderr="sudo: a password is required\n")
        return CommandResult(argv, 0)

    recorder = RecordingExecutor(respond)
    with Manager.from_cluster_home(
        demo_home,
        "demo",
        host="db1",
        executor=recorder,
        monitor_interval=0,
        retry=RetryPolicy(initial=0.02, maximum=0.05, attempts=3),
    ) as manager:
        manager.update_datasource("db1", state="ONLINE")
        assert wait_until(lambda: "gave up after 3 retries" in manager.problems.get("master", ""))
        starts = recorder.calls.count(START)
        time.sleep(0.2)
        assert recorder.calls.count(START) == starts == 4  # the first try and three retries
        assert any(e.kind == "warning" and "giving up" in e.message for e in manager.history)
        manager.update_datasource("db1", state="OFFLINE")  # the manager keeps working
        assert manager.datasources["db1"].state.value == "OFFLINE"


def test_a_hanging_command_times_out_and_shows_in_ls(cluster_home: Path, service_dir: Path) -> None:
    write_service(
        service_dir,
        "master.properties",
        "name=master\ncommand.start=sleep 600\ncommand.stop=true\ncommand.timeout=0.3\n",
    )
    with Manager.from_cluster_home(
        cluster_home, "demo", host="db1", monitor_interval=0, retry=RetryPolicy(attempts=0)
    ) as manager:
        manager.add_datasource("db1", role="master")
        started = time.monotonic()
        result = manager.update_datasource("db1", state="ONLINE")
        assert time.monotonic() - started < PATIENCE  # killed at its timeout, not after 600 s
        (outcome,) = result.commands
        assert outcome.result is not None and outcome.result.timed_out
        assert "timed out" in result.errors[0]
        out = io.StringIO()
        Shell(manager, stdout=out).onecmd("ls")
        assert "last error: start on db1 failed: command timed out" in out.getvalue()
        assert manager.update_datasource("db1", state="OFFLINE").ok


def test_reconcile_is_off_with_a_warning_for_a_service_it_cannot_read(
    cluster_home: Path, service_dir: Path
) -> None:
    write_service(
        service_dir,
        "master.properties",
        "name=master\ncommand.start=/usr/local/bin/vip-up\ncommand.stop=/usr/local/bin/vip-down\n",
    )
    recorder = RecordingExecutor()
    with Manager.from_cluster_home(
        cluster_home, "demo", executor=recorder, monitor_interval=0
    ) as m:
        (warning,) = [e for e in m.history if e.kind == "warning"]
        assert "reconcile is off for service 'master'" in warning.message
        assert "vip.address" in warning.message
        m.reconcile()
        assert recorder.calls == []  # nothing to probe with
