"""The etcd agent's check of held VIPs (Agent._check_held) against a stop on another thread: it
takes again the lock of a VIP still held, never one that a stop has just released.

A real Manager with a recording executor; the fence stands in for etcd and makes the
interleaving: its release (the stop's, once the VIP is confirmed gone) waits until the check
has read what is held.  The same race on a real etcd: tests/integration/test_etcd_fence_races.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import pytest

from floatingip import Manager
from floatingip.agent import Agent
from floatingip.errors import UsageError
from floatingip.fence import FenceAnswer
from floatingip.supervisor import RetryPolicy
from floatingip.testing import RecordingExecutor

PATIENCE = 60.0
DELETE = ("sudo", "-n", "ip", "addr", "del", "192.0.2.22/24", "dev", "eth0")


class Releasing:
    """Grants every start; a release waits for ``go``; the check's questions are recorded."""

    def __init__(self) -> None:
        self.releasing = threading.Event()
        self.go = threading.Event()
        self.checked: list[str] = []
        self.holder: str | None = None  # the other host the check is told of

    def acquire(self, service: str, *, host: str, datasource: str | None) -> FenceAnswer:
        return FenceAnswer(granted=True)

    def release(self, service: str, *, host: str) -> None:
        self.releasing.set()
        self.go.wait(PATIENCE)

    def held_elsewhere(self, service: str) -> str | None:
        self.checked.append(service)
        return self.holder


class Watched:
    """The agent's manager, telling when the check has read what is held."""

    def __init__(self, manager: Manager) -> None:
        self._manager = manager
        self.read = threading.Event()

    @property
    def held(self) -> Mapping[str, str]:
        held = self._manager.held
        self.read.set()
        return held

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)


@pytest.fixture
def fence() -> Releasing:
    return Releasing()


@pytest.fixture
def recorder() -> RecordingExecutor:
    return RecordingExecutor()


@pytest.fixture
def manager(demo_home: Path, fence: Releasing, recorder: RecordingExecutor) -> Iterator[Manager]:
    with Manager.from_cluster_home(
        demo_home,
        "demo",
        host="db1",
        executor=recorder,
        fence=fence,
        monitor_interval=0,
        retry=RetryPolicy(initial=60, maximum=60),
    ) as manager:
        assert manager.update_datasource("db1", state="ONLINE").ok
        assert manager.held == {"master": "db1"}
        yield manager


def checking(manager: Manager, fence: Releasing) -> tuple[Agent, Watched]:
    """An agent with only what its check uses: the manager (watched) and the fence."""
    agent = Agent.__new__(Agent)
    watched = Watched(manager)
    agent.manager = cast(Manager, watched)
    agent.fence = cast(Any, fence)
    return agent, watched


def test_the_check_never_takes_again_a_lock_that_a_stop_just_released(
    manager: Manager, fence: Releasing
) -> None:
    """The check read "master is held" while a stop on another thread (the monitor's, a retry)
    was releasing its lock; it used to ask the fence then, which took the lock again on etcd
    for a VIP that was gone: other hosts refused while this agent lived."""
    agent, watched = checking(manager, fence)
    stop = threading.Thread(
        target=manager.update_datasource, args=("db1",), kwargs={"state": "OFFLINE"}
    )
    stop.start()
    assert fence.releasing.wait(PATIENCE)  # the VIP is gone, its lock being released
    check = threading.Thread(target=agent._check_held)
    check.start()
    assert watched.read.wait(PATIENCE)  # the check has read "master is held"
    fence.go.set()
    stop.join(PATIENCE)
    check.join(PATIENCE)
    assert not stop.is_alive() and not check.is_alive()
    assert manager.held == {}
    assert fence.checked == []


def test_the_check_takes_the_lock_of_a_held_vip_and_drops_it_if_another_host_holds_it(
    manager: Manager, fence: Releasing, recorder: RecordingExecutor
) -> None:
    agent, _ = checking(manager, fence)
    agent._check_held()
    assert fence.checked == ["master"] and manager.held == {"master": "db1"}
    assert DELETE not in recorder.calls
    fence.holder = "db2"
    fence.go.set()  # the stop's release
    agent._check_held()
    assert fence.checked == ["master", "master"]
    assert DELETE in recorder.calls  # dropped here


def test_while_held_runs_only_while_held_and_names_an_unknown_service(
    manager: Manager, fence: Releasing
) -> None:
    assert manager.while_held("master", lambda: "asked") == "asked"
    fence.go.set()
    assert manager.update_datasource("db1", state="OFFLINE").ok
    assert manager.while_held("master", lambda: "asked") is None
    with pytest.raises(UsageError, match="unknown service 'slave' \\(known: master\\)"):
        manager.while_held("slave", lambda: "asked")
