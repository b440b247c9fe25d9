"""Flapping and concurrency: a model-based property test of thousands of random events, and
sixteen threads reporting changes at once.

Two hosts, one manager each (as deployed), fed the same events by a coordinator: state and role
changes, policy changes, injected command failures, crashes and restarts.  After every event at
most one host holds the VIP; after each monitor pass with no fault pending, the holder is the one
the model says: the ONLINE master's host, outside MAINTENANCE.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from floatingip import CommandResult, Manager
from floatingip.supervisor import RetryPolicy
from floatingip.testing import FakeNetwork, RecordingExecutor, write_cluster_home
from tests.conftest import report

HOSTS = ("db1", "db2")
VIP = "192.0.2.22/24"
SERVICE = f"name=master\nvip.address={VIP}\nvip.interface=eth0\nvip.arp.count=0\nvip.sudo=false\n"
MIN_EVENTS = 4_500  # about 1-2 ms each; raise max_examples below for a longer hunt
events_run = itertools.count()


def make_home(root: Path) -> Path:
    return write_cluster_home(
        root,
        services={"master": SERVICE},
        datasources={"db1": "name=db1\nrole=master\n", "db2": "name=db2\nrole=slave\n"},
    )


class Cluster(RuleBasedStateMachine):
    home: Path

    @initialize()
    def start(self) -> None:
        self.network = FakeNetwork(HOSTS, strict=True)
        self.roles = {"db1": "master", "db2": "slave"}
        self.states = dict.fromkeys(HOSTS, "OFFLINE")
        self.policy = "AUTOMATIC"
        self.managers = {host: self._start_manager(host) for host in HOSTS}
        self.failed_seen = self.network.failed  # failures counted up to the end of the last step

    def _start_manager(self, host: str) -> Manager:
        return Manager.from_cluster_home(
            self.home,
            "demo",
            host=host,
            executor=self.network.executor(host),
            roles=self.roles,
            states=self.states,
            policy=self.policy,
            monitor_interval=0,
            retry=RetryPolicy(attempts=0),  # the test runs the monitor's passes itself
        )

    def _holders(self) -> list[str]:
        return self.network.holders(VIP)

    def _step(self) -> None:
        next(events_run)
        # Failures since the last step: the event's own commands count too (a stop that failed
        # during the event leaves the repair to the next monitor passes).
        failed_before, self.failed_seen = self.failed_seen, self.network.failed
        before = self._holders()
        assert len(before) <= 1, f"two holders after an event: {before}"
        for manager in self.managers.values():
            manager.reconcile()  # a monitor pass on each host
        after = self._holders()
        assert len(after) <= 1, f"two holders after a monitor pass: {after}"
        failed_now, self.failed_seen = self.network.failed, self.network.failed
        if self.network.faults_pending or failed_now != failed_before:
            return  # a command failed in this step: the next monitor passes must repair it
        if self.policy == "MAINTENANCE":
            assert after == before, "something ran in MAINTENANCE"
            return
        masters = [h for h in HOSTS if self.roles[h] == "master" and self.states[h] == "ONLINE"]
        if masters:
            assert len(after) == 1 and after[0] in masters, (after, self.roles, self.states)
        else:
            assert after == [], (after, self.roles, self.states)

    @rule(
        host=st.sampled_from(HOSTS),
        state=st.sampled_from(["ONLINE", "OFFLINE", "FAILED", "SHUNNED"]),
    )
    def change_state(self, host: str, state: str) -> None:
        self.states[host] = state
        for manager in self.managers.values():
            manager.update_datasource(host, state=state)
        self._step()

    @rule(host=st.sampled_from(HOSTS), role=st.sampled_from(["master", "slave"]))
    def change_role(self, host: str, role: str) -> None:
        self.roles[host] = role
        for manager in self.managers.values():
            manager.update_datasource(host, role=role)
        self._step()

    @rule(mode=st.sampled_from(["AUTOMATIC", "MANUAL", "MAINTENANCE"]))
    def change_policy(self, mode: str) -> None:
        self.policy = mode
        for manager in self.managers.values():
            manager.set_policy(mode)
        self._step()

    @rule(host=st.sampled_from(HOSTS), count=st.integers(1, 3))
    def command_failures(self, host: str, count: int) -> None:
        self.network.fail_next(host, count)
        self._step()

    @rule(host=st.sampled_from(HOSTS))
    def crash_and_restart(self, host: str) -> None:
        # kill -9: no failsafe; the new manager learns the states and reconciles at start
        self.managers[host] = self._start_manager(host)
        self._step()

    @invariant()
    def never_two_holders(self) -> None:
        if hasattr(self, "network"):
            assert len(self._holders()) <= 1


@pytest.mark.slow
def test_thousands_of_random_events_keep_the_vip_where_the_model_says(tmp_path: Path) -> None:
    Cluster.home = make_home(tmp_path)
    start = next(events_run)
    run = Cluster.TestCase
    run.settings = settings(
        max_examples=100,
        stateful_step_count=60,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    run("runTest").runTest()
    total = next(events_run) - start - 1
    report(f"stateful test: {total} random events, VIP always where the model says")
    assert total >= MIN_EVENTS


def test_threads_reporting_at_once_lose_nothing_and_never_interleave_a_service(
    demo_home: Path,
) -> None:
    active = {"count": 0, "most": 0}
    guard = threading.Lock()

    def respond(argv: tuple[str, ...]) -> CommandResult:
        with guard:
            active["count"] += 1
            active["most"] = max(active["most"], active["count"])
        time.sleep(0.0005)  # a command that takes a moment, so overlaps would show
        with guard:
            active["count"] -= 1
        return CommandResult(argv, 0)

    recorder = RecordingExecutor(respond)
    workers, per_thread = 16, 100
    with Manager.from_cluster_home(
        demo_home, "demo", host="db1", executor=recorder, monitor_interval=0
    ) as manager:
        names = [f"t{n}" for n in range(workers)]
        for name in names:
            manager.add_datasource(name, role="slave", host="elsewhere")
        states = ["ONLINE", "OFFLINE", "FAILED", "SHUNNED"]
        applied = [0] * workers

        def work(worker: int) -> None:
            for i in range(per_thread):
                manager.update_datasource(names[worker], state=states[i % 4])
                manager.update_datasource("db1", state="ONLINE" if (i + worker) % 2 else "OFFLINE")
                applied[worker] += 1

        threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert applied == [per_thread] * workers  # no thread died on an error
        for name in names:  # every thread's last change is there: none lost
            assert manager.datasources[name].state.value == states[(per_thread - 1) % 4]
        assert active["most"] == 1, "two commands ran at once"
        changes = [c for c in recorder.calls if c[2:4] == ("ip", "addr")]
        kinds = [c[4] for c in changes]
        assert kinds[0] == "add", "the first VIP change was not a start"
        assert all(a != b for a, b in itertools.pairwise(kinds)), "start/stop out of order"
        online = manager.datasources["db1"].state.value == "ONLINE"
        assert (manager.held == {"master": "db1"}) == online
        assert (kinds[-1] == "add") == online
    report(
        f"{workers} threads x {2 * per_thread} changes: {len(changes)} VIP changes, "
        "never two at once"
    )


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("CRITICAL")  # thousands of events log a lot; the assertions say enough
