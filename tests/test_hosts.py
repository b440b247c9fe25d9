"""floatingip.hosts: a host that does not answer, with real commands (a `sleep` that outlives the
manager's patience stands for a host whose ssh hangs)."""

from __future__ import annotations

import pytest

from floatingip.commands import LocalExecutor
from floatingip.dad import advertise_argv, probe_argv
from floatingip.errors import HostDeadError, HostUnreachableError
from floatingip.hosts import Hosts, expected_seconds
from floatingip.results import Event
from tests.conftest import PATIENCE, wait_until


def guarded(unreachable_after: float) -> tuple[Hosts, list[Event]]:
    events: list[Event] = []
    return Hosts("coordinator", unreachable_after, events.append), events


def test_a_host_that_does_not_answer_is_reported_and_not_waited_for_again() -> None:
    hosts, events = guarded(0.2)
    db1 = hosts.guard({"db1": LocalExecutor()})["db1"]
    with pytest.raises(HostUnreachableError, match=r"cannot reach host 'db1'.*no answer within"):
        db1.run(["sleep", "3"])
    assert "db1" in hosts.unreachable
    with hosts.acting("master", "stop"), pytest.raises(HostUnreachableError, match="not returned"):
        db1.run(["true"])  # at once: the sleep is still running there
    assert wait_until(lambda: "db1" not in hosts.unreachable, PATIENCE)  # it answered, late
    assert db1.run(["true"]).ok
    assert any("answered" in event.message and "late" in event.message for event in events)


def test_the_own_host_is_never_bounded_and_a_dead_host_runs_nothing() -> None:
    hosts, _ = guarded(0.2)
    executors = hosts.guard({"coordinator": LocalExecutor(), "db1": LocalExecutor()})
    assert (
        executors["coordinator"].run(["sleep", "0.5"]).ok
    )  # its own commands: a wedge, not a host
    hosts.declare_dead("db1", "powered off")
    with pytest.raises(HostDeadError, match=r"declared dead \(powered off\)"):
        executors["db1"].run(["true"])


def test_commands_that_take_long_by_design_get_that_long_too() -> None:
    probe = probe_argv("eth0", "192.0.2.22", 2.5, sudo=True)
    assert expected_seconds(("ip", "netns", "exec", "ns", *probe)) == 2.5
    assert expected_seconds(("arping", "-U", "-c", "3", "-I", "eth0", "192.0.2.22")) == 3.0
    assert expected_seconds(("ip", "-o", "addr", "show", "dev", "eth0")) == 0.0
    # the IPv6 announcement sends one neighbour advertisement a second, as arping does
    advertise = advertise_argv("eth0", "2001:db8::22", 20, sudo=True)
    assert expected_seconds(advertise) == 20.0
