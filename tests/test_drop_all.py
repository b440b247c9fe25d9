"""The emergency drop (Manager.drop_all), the vacated grant that skips the duplicate address
check (Fences), and the release record of the etcd lock (cluster_state)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from floatingip import Manager
from floatingip.cluster_state import ClusterStateError, Snapshot, parse_released, released_value
from floatingip.errors import UsageError
from floatingip.fence import FenceAnswer, Fences
from floatingip.supervisor import RetryPolicy
from floatingip.testing import FakeNetwork, RecordingExecutor

ADD = ("sudo", "-n", "ip", "addr", "add", "192.0.2.22/24", "dev", "eth0", "label", "eth0:0")
DELETE = ("sudo", "-n", "ip", "addr", "del", "192.0.2.22/24", "dev", "eth0")


class Lock:
    """A fence that grants (``vacated`` when told), runs ``during`` inside its grant (the moment
    between the fence and the start command), and remembers what it was asked and told."""

    def __init__(self, *, vacated: bool = False, granted: bool = True) -> None:
        self.vacated = vacated
        self.granted = granted
        self.during: list[object] = []
        self.calls: list[str] = []

    def acquire(self, service: str, *, host: str, datasource: str | None) -> FenceAnswer:
        self.calls.append("acquire")
        for call in self.during:
            call()  # type: ignore[operator]
        return FenceAnswer(granted=self.granted, vacated=self.vacated, reason="no")

    def release(self, service: str, *, host: str) -> None:
        self.calls.append("release")

    def abandon(self, service: str, *, host: str) -> None:
        self.calls.append("abandon")


class Check(Lock):
    finds_other_holders = True


@pytest.fixture
def recorder() -> RecordingExecutor:
    return RecordingExecutor()


@pytest.fixture
def lock() -> Lock:
    return Lock()


@pytest.fixture
def manager(demo_home: Path, recorder: RecordingExecutor, lock: Lock) -> Iterator[Manager]:
    with Manager.from_cluster_home(
        demo_home,
        "demo",
        host="db1",
        executor=recorder,
        fence=lock,
        monitor_interval=0,
        retry=RetryPolicy(initial=60, maximum=60),
    ) as manager:
        yield manager


def test_drop_all_stops_what_is_held_and_says_why(
    manager: Manager, recorder: RecordingExecutor, lock: Lock
) -> None:
    assert manager.update_datasource("db1", state="ONLINE").ok
    assert manager.held == {"master": "db1"}
    result = manager.drop_all("etcd lease lost")
    assert [c.action for c in result.commands] == ["stop"] and result.ok
    assert DELETE in recorder.calls and "192.0.2.22" not in str(recorder.addresses)
    assert manager.held == {}
    assert "etcd lease lost" in manager.problems["master"]
    warnings = [e for e in manager.history if e.kind == "warning"]
    assert "etcd lease lost" in warnings[-1].message
    assert "release" not in lock.calls  # nothing is confirmed released to the fence


def test_drop_all_on_a_host_without_the_vip_reports_nothing_failed(
    manager: Manager, recorder: RecordingExecutor
) -> None:
    """A standby losing its lease used to run `ip addr del` for an address it never had, and
    report 'VIP NOT dropped' and a problem on every etcd hiccup."""
    result = manager.drop_all("etcd lease lost")
    assert result.ok and DELETE not in recorder.calls
    assert manager.held == {} and "master" not in manager.problems


def test_drop_all_leaves_a_vip_held_on_another_host_of_the_manager(demo_home: Path) -> None:
    """A manager that acts for db1 and db2 drops db1's VIPs only: it used to mark db2's VIP not
    held while it stayed up there."""
    network = FakeNetwork(["db1", "db2"])
    with Manager.from_cluster_home(
        demo_home, "demo", host="db1", executor=network.executor("db1"),
        executors={"db2": network.executor("db2")}, states={"db2": "ONLINE"},
        monitor_interval=0,
    ) as manager:  # fmt: skip
        manager.update_datasource("db2", role="master")
        manager.update_datasource("db1", role="slave")
        assert manager.held == {"master": "db2"}
        assert manager.drop_all("db1's lease lost").ok
        assert manager.held == {"master": "db2"} and network.holders("192.0.2.22/24") == ["db2"]


def test_drop_all_does_not_wait_for_the_managers_lock(
    manager: Manager, recorder: RecordingExecutor
) -> None:
    manager.update_datasource("db1", state="ONLINE")
    manager._lock.acquire()  # a change in progress, wedged
    try:
        done: list[object] = []
        worker = threading.Thread(target=lambda: done.append(manager.drop_all("lease lost")))
        worker.start()
        worker.join(30)
        assert done, "drop_all waited for the manager's lock"
    finally:
        manager._lock.release()
    assert manager.held == {} and DELETE in recorder.calls


def test_a_start_past_the_fence_when_everything_is_dropped_is_stopped_again(
    manager: Manager, recorder: RecordingExecutor, lock: Lock
) -> None:
    # the drop lands between the fence's grant and the start command
    lock.during.append(lambda: manager.drop_all("etcd lease lost"))
    result = manager.update_datasource("db1", state="ONLINE")
    assert not result.ok
    assert "dropped while this start ran (etcd lease lost); stopped again" in result.errors[0]
    assert recorder.calls.index(ADD) < len(recorder.calls) - recorder.calls[::-1].index(DELETE)
    assert manager.held == {} and "192.0.2.22" not in str(recorder.addresses)
    # its grant is given back (it used to stay, keeping every other host out), claiming no
    # clean release
    assert lock.calls == ["acquire", "abandon"]
    # the next start after the drop is an ordinary one
    lock.during.clear()
    assert manager.update_datasource("db1", state="ONLINE").ok
    assert manager.held == {"master": "db1"}


def test_a_start_by_hand_past_the_fence_when_everything_is_dropped_is_stopped_again(
    manager: Manager, recorder: RecordingExecutor, lock: Lock
) -> None:
    """Not only the rules' starts: one by hand (the shell's `service`) adds the VIP too."""
    lock.during.append(lambda: manager.drop_all("etcd lease lost"))
    outcome = manager.run_service("master", "start")
    assert not outcome.ok and "dropped while this start ran" in str(outcome.error)
    assert "192.0.2.22" not in str(recorder.addresses) and manager.held == {}


def test_drop_all_checks_its_reason(manager: Manager) -> None:
    with pytest.raises(UsageError, match="reason"):
        manager.drop_all(None)  # type: ignore[arg-type]


def test_a_vacated_grant_skips_the_checks_that_look_for_another_holder() -> None:
    lock, check = Lock(vacated=True), Check()
    assert Fences(lock, check).acquire("master", host="db1", datasource="db1").granted
    assert check.calls == []
    lock.vacated = False
    assert Fences(lock, check).acquire("master", host="db1", datasource="db1").granted
    assert check.calls == ["acquire"]
    other = Lock()  # a fence that is not such a check is still asked
    Fences(Lock(vacated=True), other).acquire("master", host="db1", datasource=None)
    assert other.calls == ["acquire"]


def test_a_later_refusal_abandons_the_lock_rather_than_releasing_it() -> None:
    lock, check = Lock(), Check(granted=False)
    answer = Fences(lock, check).acquire("master", host="db1", datasource="db1")
    assert not answer.granted
    assert lock.calls == ["acquire", "abandon"]  # no clean release is claimed


def test_the_release_record_parses_and_a_bad_one_names_its_key() -> None:
    key = "/floatingip/demo/service/master/released"
    record = parse_released(key, "master", released_value("db1", 42))
    assert (record.host, record.revision) == ("db1", 42)
    for bad, why in [
        (b"{", "not JSON"),
        (json.dumps({"host": "db1"}).encode(), "missing field(s) revision"),
        (json.dumps({"host": "db1", "revision": 0}).encode(), "revision must be"),
        (json.dumps({"host": "db1", "revision": True}).encode(), "revision must be"),
        (json.dumps({"host": "../x", "revision": 3}).encode(), "host"),
        (json.dumps({"host": "db1", "revision": 3, "lease": 1}).encode(), "unknown field"),
    ]:
        with pytest.raises(ClusterStateError, match=key) as caught:
            parse_released(key, "master", bad)
        assert why in str(caught.value)
    snapshot = Snapshot("demo")
    assert snapshot.apply(key, released_value("db2", 7), revision=8) == "released"
    assert snapshot.released["master"].host == "db2"
    assert snapshot.apply(key, None, revision=9) == "released"
    assert snapshot.released == {}
    assert snapshot.apply(key, b"nonsense", revision=10) == "problem" and key in snapshot.problems
