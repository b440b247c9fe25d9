"""The fence seam: the Manager asks its fence before every start, tells it after a confirmed
stop, and stops a service at once when the fence revokes it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from floatingip import FloatingIPError, Manager
from floatingip.commands import CommandResult
from floatingip.dad import PROBE_SCRIPT
from floatingip.errors import ManagerClosedError, UsageError
from floatingip.fence import DuplicateAddressFence, Fence, FenceAnswer, Fences, OpenFence
from floatingip.supervisor import RetryPolicy
from floatingip.testing import RecordingExecutor, write_cluster_home
from tests.conftest import SEED_MASTER_PROPERTIES, wait_until

ADD = ("sudo", "-n", "ip", "addr", "add", "192.0.2.22/24", "dev", "eth0", "label", "eth0:0")
DELETE = ("sudo", "-n", "ip", "addr", "del", "192.0.2.22/24", "dev", "eth0")


class Lease:
    """A fence that grants while ``granted``, and remembers what it was asked and told."""

    def __init__(self) -> None:
        self.granted = True
        self.reason = "the lease on etcd is held by db2"
        self.calls: list[tuple[str, str, str, str | None]] = []

    def acquire(self, service: str, *, host: str, datasource: str | None) -> FenceAnswer:
        self.calls.append(("acquire", service, host, datasource))
        if self.granted:
            return FenceAnswer(granted=True)
        return FenceAnswer(granted=False, reason=self.reason)

    def release(self, service: str, *, host: str) -> None:
        self.calls.append(("release", service, host, None))

    def abandon(self, service: str, *, host: str) -> None:
        self.calls.append(("abandon", service, host, None))


@pytest.fixture
def lease() -> Lease:
    return Lease()


@pytest.fixture
def recorder() -> RecordingExecutor:
    return RecordingExecutor()


@pytest.fixture
def manager(demo_home: Path, recorder: RecordingExecutor, lease: Lease) -> Iterator[Manager]:
    with Manager.from_cluster_home(
        demo_home,
        "demo",
        host="db1",
        executor=recorder,
        fence=lease,
        monitor_interval=0,
        retry=RetryPolicy(initial=60, maximum=60),
    ) as manager:
        yield manager


def test_the_protocol_is_what_the_manager_checks() -> None:
    assert isinstance(Lease(), Fence)
    assert isinstance(OpenFence(), Fence)
    assert isinstance(DuplicateAddressFence({}, {}), Fence)


def test_a_granted_start_runs_and_a_confirmed_stop_releases(
    manager: Manager, recorder: RecordingExecutor, lease: Lease
) -> None:
    assert manager.update_datasource("db1", state="ONLINE").ok
    assert ("acquire", "master", "db1", "db1") in lease.calls
    assert ADD in recorder.calls and manager.held == {"master": "db1"}
    assert not any(PROBE_SCRIPT in call for call in recorder.calls)  # the fence replaces DAD
    assert manager.update_datasource("db1", state="OFFLINE").ok
    assert lease.calls[-1] == ("release", "master", "db1", None)


def test_a_refused_start_runs_nothing_and_is_a_failure_with_the_reason(
    manager: Manager, recorder: RecordingExecutor, lease: Lease
) -> None:
    lease.granted = False
    result = manager.update_datasource("db1", state="ONLINE")
    assert not result.ok
    assert ADD not in recorder.calls and manager.held == {}
    (error,) = result.errors
    assert "the lease on etcd is held by db2" in error
    assert "the lease on etcd is held by db2" in manager.problems["master"]
    assert "retry 1/5" in manager.problems["master"]  # retried like a failed start
    failed = [e for e in manager.history if e.kind == "command" and not e.ok]
    assert failed and "the lease on etcd is held by db2" in failed[-1].message
    lease.granted = True
    assert manager.update_datasource("db1", state="ONLINE").ok  # the operator's retry
    assert manager.held == {"master": "db1"} and "master" not in manager.problems


def test_a_granted_start_that_failed_gives_the_lock_back_when_the_vip_is_not_here(
    manager: Manager, recorder: RecordingExecutor, lease: Lease
) -> None:
    """A failed start used to keep the lock: nothing here was held, so no stop ever released
    it, and while this manager lived no other host could take the VIP."""
    recorder.network.fail_next(recorder.host, 1)
    assert not manager.update_datasource("db1", state="ONLINE").ok
    assert not manager.held and not recorder.addresses["eth0"]
    # given back claiming no clean release: this host never held it, so it cannot vouch that
    # nobody does (the next holder runs its own duplicate address check)
    assert lease.calls[-1] == ("abandon", "master", "db1", None)


def test_a_granted_start_that_failed_keeps_the_lock_while_the_vip_may_be_here(
    demo_home: Path, lease: Lease
) -> None:
    """Nothing answers (the start and the status both fail): the VIP may be up, so the lock
    stays and keeps every other host out."""
    unreachable = RecordingExecutor(lambda argv: CommandResult(argv, 255, stderr="no route\n"))
    with Manager.from_cluster_home(
        demo_home, "demo", host="db1", executor=unreachable, fence=lease, monitor_interval=0,
        retry=RetryPolicy(initial=60, maximum=60),
    ) as manager:  # fmt: skip
        assert not manager.update_datasource("db1", state="ONLINE").ok
        assert ("acquire", "master", "db1", "db1") in lease.calls
        assert not any(call[0] in ("release", "abandon") for call in lease.calls)


def test_asking_the_rules_again_without_a_probe_takes_a_refused_vip_at_once(
    manager: Manager, recorder: RecordingExecutor, lease: Lease
) -> None:
    """What the agent does when another host lets go of the lock: no status read before the
    start (the add itself fails on a conflict, and the monitor still reconciles)."""
    lease.granted = False
    assert not manager.update_datasource("db1", state="ONLINE").ok
    lease.granted = True
    before = len(recorder.calls)
    assert manager.reconcile(probe=False).ok
    assert manager.held == {"master": "db1"}
    assert recorder.calls[before] == ADD
    assert manager.reconcile().ok  # with the probe: the status is read first
    assert "show" in recorder.calls[-1]


def test_a_stop_nothing_can_confirm_gives_the_lock_back_claiming_no_clean_release(
    tmp_path: Path, lease: Lease
) -> None:
    """A classic service with no command.status: its stop exiting 0 does not prove the address
    gone, so the lock goes back without the clean-release record (which would let the next
    holder skip its duplicate address check)."""
    home = write_cluster_home(
        tmp_path,
        services={"master": "name=master\ncommand.start=true start\ncommand.stop=true stop\n"},
        datasources={"db1": "name=db1\nrole=master\n"},
    )
    with Manager.from_cluster_home(
        home, "demo", host="db1", executor=RecordingExecutor(), fence=lease, monitor_interval=0
    ) as manager:
        assert manager.update_datasource("db1", state="ONLINE").ok
        assert manager.update_datasource("db1", state="OFFLINE").ok
        assert lease.calls[-1] == ("abandon", "master", "db1", None)


def test_a_fence_that_raises_refuses(
    demo_home: Path, recorder: RecordingExecutor, lease: Lease
) -> None:
    class Broken(Lease):
        def acquire(self, service: str, *, host: str, datasource: str | None) -> FenceAnswer:
            raise ConnectionError("etcd unreachable")

    with Manager.from_cluster_home(
        demo_home, "demo", host="db1", executor=recorder, fence=Broken(), monitor_interval=0
    ) as manager:
        result = manager.update_datasource("db1", state="ONLINE")
        assert not result.ok and manager.held == {} and ADD not in recorder.calls
        assert "etcd unreachable" in result.errors[0]


def test_a_fence_of_the_wrong_type_is_refused_at_construction(demo_home: Path) -> None:
    with pytest.raises(FloatingIPError, match="fence"):
        Manager.from_cluster_home(demo_home, "demo", host="db1", fence="etcd")  # type: ignore[arg-type]


def test_revoke_stops_at_once_without_the_rules_and_says_why(
    manager: Manager, recorder: RecordingExecutor, lease: Lease
) -> None:
    manager.update_datasource("db1", state="ONLINE")
    assert manager.held == {"master": "db1"}
    lease.granted = False
    result = manager.revoke("master", "the etcd lease could not be renewed")
    assert result.ok and [c.action for c in result.commands] == ["stop"]
    assert recorder.calls[-2] == DELETE  # then the status that confirms it is gone
    assert manager.held == {}
    warnings = [e for e in manager.history if e.kind == "warning"]
    assert "the etcd lease could not be renewed" in warnings[-1].message
    assert "the etcd lease could not be renewed" in manager.problems["master"]
    # not taken straight back: the rules are asked again on the next change or reconcile
    assert recorder.calls.count(ADD) == 1
    lease.granted = True
    assert manager.reconcile().ok
    assert manager.held == {"master": "db1"} and recorder.calls.count(ADD) == 2


def test_revoke_of_a_service_not_held_records_why_and_runs_nothing(
    manager: Manager, recorder: RecordingExecutor
) -> None:
    before = list(recorder.calls)
    result = manager.revoke("master", "lease lost")
    assert result.ok and result.commands == () and recorder.calls == before
    assert any("lease lost" in e.message for e in manager.history if e.kind == "warning")


def test_revoke_checks_its_arguments(manager: Manager) -> None:
    with pytest.raises(UsageError, match="unknown service 'nope'"):
        manager.revoke("nope", "lease lost")
    with pytest.raises(FloatingIPError, match="reason"):
        manager.revoke("master", None)  # type: ignore[arg-type]
    manager.close()
    with pytest.raises(ManagerClosedError):
        manager.revoke("master", "lease lost")


def test_the_default_fence_probes_only_when_a_holder_may_be_unseen(
    demo_home: Path, recorder: RecordingExecutor
) -> None:
    """db2 runs on a host this manager cannot see: the probe runs before the start; once db2 is
    declared on a host it acts for, the previous holder is confirmed gone and nothing is probed."""
    with Manager.from_cluster_home(
        demo_home, "demo", host="db1", executor=recorder, monitor_interval=0
    ) as manager:
        manager.update_datasource("db1", state="ONLINE")
        probes = [i for i, call in enumerate(recorder.calls) if PROBE_SCRIPT in call]
        assert probes and probes[-1] < recorder.calls.index(ADD)
    seen = RecordingExecutor()
    with Manager.from_cluster_home(
        demo_home,
        "demo",
        host="db1",
        executor=seen,
        executors={"db2": RecordingExecutor()},
        monitor_interval=0,
    ) as manager:
        manager.update_datasource("db1", state="ONLINE")
        assert ADD in seen.calls and not any(PROBE_SCRIPT in call for call in seen.calls)


def test_fences_all_must_grant_and_a_later_refusal_gives_back_what_was_granted() -> None:
    """The distributed mode asks the etcd lock first, then the duplicate address check: both
    must grant; when the probe refuses, the lock taken for nothing is released at once."""
    lock, probe = Lease(), Lease()
    both = Fences(lock, probe)
    assert isinstance(both, Fence)
    assert both.acquire("master", host="db1", datasource="db1").granted
    probe.granted = False
    answer = both.acquire("master", host="db1", datasource="db1")
    assert not answer.granted and answer.reason == "the lease on etcd is held by db2"
    assert lock.calls[-1] == ("abandon", "master", "db1", None)  # no clean release claimed
    lock.granted, probe.granted = False, True
    assert not both.acquire("master", host="db1", datasource="db1").granted
    assert probe.calls[-1][0] == "acquire" and len(probe.calls) == 2  # not asked after a refusal
    both.release("master", host="db1")
    assert lock.calls[-1] == probe.calls[-1] == ("release", "master", "db1", None)


def test_a_classic_restart_is_its_own_command_not_fenced(
    demo_home: Path, recorder: RecordingExecutor, lease: Lease
) -> None:
    """A classic service's command.restart is opaque (the seed's is `echo "Not supported"`):
    it runs as written, as before the fence seam."""
    lease.granted = False
    service_file = demo_home / "conf/cluster/demo/service/master.properties"
    service_file.write_text(SEED_MASTER_PROPERTIES)
    with Manager.from_cluster_home(
        demo_home, "demo", host="db1", executor=recorder, fence=lease, monitor_interval=0
    ) as manager:
        outcome = manager.run_service("master", "restart")
        assert outcome.ok and outcome.argv == ("echo", "Not supported")
        assert not any(call[0] == "acquire" for call in lease.calls)


class RemoteHost(RecordingExecutor):
    """A host whose login decides sudo there (as SshExecutor.runs_as_root does)."""

    def __init__(self, runs_as_root: bool) -> None:
        super().__init__()
        self.runs_as_root = runs_as_root


@pytest.mark.parametrize("runs_as_root", [True, False])
def test_a_refused_start_shows_the_command_with_the_sudo_of_the_host_it_would_run_on(
    demo_home: Path, lease: Lease, runs_as_root: bool
) -> None:
    """The outcome of a refused start names the command the host would have run: its login
    decides sudo (vip.sudo=auto), not this process's own privilege."""
    lease.granted = False
    service_file = demo_home / "conf/cluster/demo/service/master.properties"
    service_file.write_text("name=master\nvip.address=192.0.2.22/24\nvip.interface=eth0\n")
    host = RemoteHost(runs_as_root)
    with Manager.from_cluster_home(
        demo_home, "demo", host="db1", executor=host, fence=lease, monitor_interval=0
    ) as manager:
        result = manager.update_datasource("db1", state="ONLINE")
        (outcome,) = [o for o in result.commands if o.action == "start"]
        assert not outcome.ok and "the lease on etcd is held by db2" in str(outcome.error)
        prefix = () if runs_as_root else ("sudo", "-n")
        assert outcome.argv == (*prefix, "ip", "addr", "add", "192.0.2.22/24", "dev", "eth0")


NO_LEASE = "no live etcd lease (etcd unreachable or the lease just renewed): a VIP is never taken"


def test_a_start_refused_again_on_every_monitor_tick_is_logged_at_error_once(
    demo_home: Path, recorder: RecordingExecutor, lease: Lease, caplog: pytest.LogCaptureFixture
) -> None:
    """An agent without a lease is refused its start on every monitor tick: ERROR once per
    refusal (and again when it changes, or after the service did something else), DEBUG for
    the repeats; every one is still in the history and in ``problems``."""
    lease.granted, lease.reason = False, NO_LEASE

    def refusals() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "result=failed" in r.getMessage()]

    caplog.set_level(logging.DEBUG, logger="floatingip.dispatch")
    with Manager.from_cluster_home(
        demo_home, "demo", host="db1", executor=recorder, fence=lease, monitor_interval=0.05,
        retry=RetryPolicy(initial=60, maximum=60), states={"db1": "ONLINE"},
    ) as manager:  # fmt: skip
        assert wait_until(lambda: len(refusals()) >= 5), caplog.text
        levels = [r.levelno for r in refusals()]
        assert levels[0] == logging.ERROR and set(levels[1:]) == {logging.DEBUG}, levels
        assert NO_LEASE in manager.problems["master"]
        failed = [e for e in manager.history if e.kind == "command" and not e.ok]
        assert len(failed) >= 5 and all(NO_LEASE in e.message for e in failed)

        lease.reason = "held by host db2 (for db2) since 08:00:00"  # a new refusal: said once
        assert wait_until(lambda: "held by host db2" in refusals()[-1].getMessage())
        assert wait_until(lambda: len([r for r in refusals() if "db2" in r.getMessage()]) >= 3)
        again = [r.levelno for r in refusals() if "held by host db2" in r.getMessage()]
        assert again[0] == logging.ERROR and set(again[1:]) == {logging.DEBUG}, again

        lease.granted = True  # taken, then released: the next refusal is news again
        assert wait_until(lambda: manager.held == {"master": "db1"})
        assert manager.update_datasource("db1", state="OFFLINE").ok
        lease.granted = False
        caplog.clear()
        manager.update_datasource("db1", state="ONLINE")
        assert [r.levelno for r in refusals()][:1] == [logging.ERROR], caplog.text
