"""The Manager enforces its safety promises whatever a rule file says, and whatever hangs.

- no ``start`` before reconcile has learned what is held, even for a rule that does not wait for
  the manager to be RUNNING; once RUNNING the rules are asked again;
- duplicate address detection fails closed: a probe that cannot run means the VIP is not taken;
- a consequence that never returns does not take the failsafe with it, and reading the state
  never waits behind a running command.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from floatingip import CommandResult, FloatingIPError, Manager, load_services
from floatingip.commands import LocalExecutor
from floatingip.dad import PROBE_SCRIPT
from floatingip.errors import CommandNotFoundError
from floatingip.rules import (
    RuleContext,
    RuleSet,
    active_policy,
    c,
    datasource,
    load_rules,
    shipped_rules_dir,
)
from floatingip.testing import FakeNetwork, RecordingExecutor, write_cluster_home
from tests.conftest import require_program, wait_until, write_service
from tests.test_commands import processes_with

VIP = "192.0.2.22/24"
VIP_SERVICE = (
    f"name=master\nvip.address={VIP}\nvip.interface=eth0\nvip.arp.count=0\nvip.sudo=false\n"
)
CLASSIC_SERVICE = (
    "name=master\n"
    f"command.start=sudo ip addr add {VIP} dev eth0 label eth0:0\n"
    f"command.stop=sudo ip addr del {VIP} dev eth0\n"
    "command.status=ip -o addr show dev eth0\n"
)


def make_home(root: Path, service: str = VIP_SERVICE) -> Path:
    return write_cluster_home(
        root,
        services={"master": service},
        datasources={"db1": "name=db1\nrole=master\n", "db2": "name=db2\nrole=slave\n"},
    )


@pytest.fixture
def eager_rules(tmp_path: Path) -> Path:
    """The shipped rule file without `c.manager << manager_running()`: a rule author's rules."""
    shipped = (shipped_rules_dir() / "FloatingIP.py").read_text()
    condition = "    c.manager << manager_running(),\n"
    assert condition in shipped
    directory = tmp_path / "rules"
    directory.mkdir(mode=0o755)
    write_service(directory, "Eager.py", shipped.replace(condition, ""))
    return directory


# -- item 3: no start before reconcile, whatever the rules say -----------------------------


def test_a_rule_without_the_manager_condition_waits_for_reconcile_vip_held_elsewhere(
    tmp_path: Path, eager_rules: Path
) -> None:
    """db2 still holds the VIP from before the restart; db1 is now the ONLINE master.  Taking
    it at once would make two holders: reconcile must release it on db2 first."""
    network = FakeNetwork(["db1", "db2"], strict=True)
    network.addresses["db2"].add(VIP)
    manager = Manager.from_cluster_home(
        make_home(tmp_path),
        "demo",
        rules_dir=eager_rules,
        host="db1",
        executor=network.executor("db1"),
        executors={"db2": network.executor("db2")},
        states={"db1": "ONLINE", "db2": "ONLINE"},
        monitor_interval=0,
    )
    with manager:
        assert network.changes == [("db2", "del", VIP), ("db1", "add", VIP)]
        assert manager.held == {"master": "db1"}
        kinds = [event.kind for event in manager.history]
        assert kinds.index("drift") < max(
            i for i, e in enumerate(manager.history) if e.kind == "command"
        )


def test_a_rule_without_the_manager_condition_waits_for_a_slow_reconcile(
    tmp_path: Path, eager_rules: Path
) -> None:
    network = FakeNetwork(["db1"], strict=True)
    inner = network.executor("db1")
    probing = threading.Event()
    release = threading.Event()
    seen_at_first_look: list[list[tuple[str, str, str]]] = []

    class SlowStatus:
        """The first look at the interface (reconcile's status) hangs until released."""

        def run(
            self, argv: tuple[str, ...], *, timeout: float = 10, check: bool = True
        ) -> CommandResult:
            if "show" in argv and not probing.is_set():
                seen_at_first_look.append(list(network.changes))
                probing.set()
                release.wait(30)
            return inner.run(argv, timeout=timeout, check=check)

    built: list[Manager] = []
    starting = threading.Thread(
        target=lambda: built.append(
            Manager.from_cluster_home(
                make_home(tmp_path),
                "demo",
                rules_dir=eager_rules,
                host="db1",
                executor=SlowStatus(),
                states={"db1": "ONLINE"},
                monitor_interval=0,
            )
        )
    )
    starting.start()
    try:
        assert probing.wait(20), "reconcile never looked at the interface"
        assert seen_at_first_look == [[]], "a start ran before reconcile learned what is held"
        assert network.addresses["db1"] == set()
    finally:
        release.set()
        starting.join(30)
    (manager,) = built
    with manager:
        assert network.changes == [("db1", "add", VIP)]  # exactly one start, once RUNNING
        assert manager.held == {"master": "db1"}
        skipped = [e.message for e in manager.history if e.kind == "skipped"]
        assert any("reconcile" in message for message in skipped), skipped


def test_a_rule_without_the_manager_condition_keeps_a_vip_already_held_here(
    tmp_path: Path, eager_rules: Path
) -> None:
    network = FakeNetwork(["db1"], strict=True)
    network.addresses["db1"].add(VIP)
    with Manager.from_cluster_home(
        make_home(tmp_path),
        "demo",
        rules_dir=eager_rules,
        host="db1",
        executor=network.executor("db1"),
        states={"db1": "ONLINE"},
        monitor_interval=0,
    ) as manager:
        assert network.changes == []  # no flap, no second add
        assert manager.held == {"master": "db1"}
        manager.update_datasource("db1", state="OFFLINE")
        manager.update_datasource("db1", state="ONLINE")
        assert network.changes == [("db1", "del", VIP), ("db1", "add", VIP)]


def test_without_reconcile_at_start_the_deferred_start_still_happens_once_running(
    tmp_path: Path, eager_rules: Path
) -> None:
    recorder = RecordingExecutor()
    with Manager.from_cluster_home(
        make_home(tmp_path),
        "demo",
        rules_dir=eager_rules,
        host="db1",
        executor=recorder,
        states={"db1": "ONLINE"},
        reconcile_at_start=False,
        monitor_interval=0,
    ) as manager:
        assert manager.held == {"master": "db1"}
        adds = [call for call in recorder.calls if "add" in call]
        assert len(adds) == 1


# -- item 4: duplicate address detection fails closed --------------------------------------


def is_probe(argv: tuple[str, ...]) -> bool:
    return PROBE_SCRIPT in argv


class ProbeMissing(RecordingExecutor):
    """The probe's program cannot be found (as when its interpreter was removed)."""

    def run(
        self, argv: tuple[str, ...], *, timeout: float = 10, check: bool = True
    ) -> CommandResult:
        if is_probe(tuple(argv)):
            self.calls.append(tuple(argv))
            raise CommandNotFoundError(f"command not found: {argv[0]}", argv=tuple(argv))
        return super().run(argv, timeout=timeout, check=check)


@pytest.mark.parametrize("service", [VIP_SERVICE, CLASSIC_SERVICE], ids=["vip", "classic"])
@pytest.mark.parametrize("failure", ["refused", "missing"])
def test_a_duplicate_check_that_cannot_run_does_not_take_the_vip(
    tmp_path: Path, service: str, failure: str
) -> None:
    recorder = ProbeMissing() if failure == "missing" else _refusing_recorder()
    home = make_home(tmp_path, service)
    (home / "conf/cluster/demo/datasource/db2.properties").write_text(
        "name=db2\nhost=db2\nrole=slave\n"  # db2 runs where this manager cannot look
    )
    with Manager.from_cluster_home(
        home, "demo", host="db1", executor=recorder, monitor_interval=0
    ) as manager:
        result = manager.update_datasource("db1", state="ONLINE")
        assert any(is_probe(call) for call in recorder.calls)
        assert not result.ok
        assert manager.held == {}
        assert not any("add" in call for call in recorder.calls), recorder.calls
        (error,) = result.errors
        assert "not taking" in error and "duplicate address" in error, error
        assert "floatingip check" in error, error
        assert "duplicate address" in manager.problems["master"]
        failed = [e for e in manager.history if e.kind == "command" and not e.ok]
        assert failed and "not taking" in failed[-1].message


def _refusing_recorder() -> RecordingExecutor:
    """A host where sudo refuses the probe; every other command works as on a real host."""
    plain = RecordingExecutor()

    def respond(argv: tuple[str, ...]) -> CommandResult:
        if is_probe(argv):
            return CommandResult(argv, 1, stderr="sudo: a password is required\n")
        return plain.run(argv, check=False)

    recorder = RecordingExecutor(respond)
    recorder.addresses = plain.addresses
    return recorder


def test_with_vip_dad_wait_0_the_vip_is_taken_without_a_probe(tmp_path: Path) -> None:
    home = make_home(tmp_path, VIP_SERVICE + "vip.dad.wait=0\n")
    (home / "conf/cluster/demo/datasource/db2.properties").write_text(
        "name=db2\nhost=db2\nrole=slave\n"
    )
    recorder = _refusing_recorder()
    with Manager.from_cluster_home(
        home, "demo", host="db1", executor=recorder, monitor_interval=0
    ) as manager:
        result = manager.update_datasource("db1", state="ONLINE")
        assert result.ok, result.errors
        assert manager.held == {"master": "db1"}
        assert not any(is_probe(call) for call in recorder.calls)


# -- item 11: a wedged rule or command does not take the failsafe with it ------------------


def wedging_rules(entered: threading.Event, release: threading.Event) -> RuleSet:
    """A rule whose consequence blocks until released, then asks to take the VIP."""
    rules = RuleSet("Wedge", services=["master"])

    @rules.rule(
        "Wedge: db2 goes ONLINE",
        c.ds << datasource(name="db2", state="ONLINE"),
        c.policy << active_policy(),
    )
    def wedge(ctx: RuleContext) -> None:
        entered.set()
        release.wait()
        ctx.start("master", datasource="db1")

    return rules


def test_a_wedged_consequence_does_not_stop_the_failsafe(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    recorder = RecordingExecutor()
    entered, release = threading.Event(), threading.Event()
    manager = Manager(
        cluster="demo",
        services=load_services(home, "demo"),
        rulesets=[*load_rules(shipped_rules_dir()), wedging_rules(entered, release)],
        datasources=[],
        host="db1",
        executor=recorder,
        monitor_interval=0,
    )
    manager.add_datasource("db1", role="master", state="ONLINE")
    manager.add_datasource("db2", role="slave", host="db2")
    assert manager.held == {"master": "db1"} and recorder.addresses["eth0"]
    wedged = threading.Thread(
        target=lambda: manager.update_datasource("db2", state="ONLINE"), daemon=True
    )
    wedged.start()
    try:
        assert entered.wait(20)
        result = manager.close(timeout=0.5)
        assert manager.closed
        assert recorder.addresses["eth0"] == {}, "the failsafe did not release the VIP"
        assert manager.held == {}
        assert any(outcome.action == "stop" and outcome.ok for outcome in result.commands)
        wedge_events = [e for e in manager.history if "has not returned" in e.message]
        assert wedge_events and not wedge_events[0].ok
        assert "datasource db2" in wedge_events[0].message
        # the wedged change still holds the manager's lock: a call now is refused, not stuck
        refused: list[BaseException] = []

        def change_after_close() -> None:
            try:
                manager.update_datasource("db1", state="OFFLINE")
            except FloatingIPError as exc:
                refused.append(exc)

        caller = threading.Thread(target=change_after_close, daemon=True)
        caller.start()
        caller.join(20)
        assert not caller.is_alive(), "a call after close waited behind the wedged change"
        assert refused and "closed" in str(refused[0])
    finally:
        release.set()
        wedged.join(20)
    # the consequence finally returned and asked for a start: a closed manager takes nothing
    assert not wedged.is_alive()
    assert recorder.addresses["eth0"] == {}
    assert manager.held == {}


def test_state_reads_do_not_wait_behind_a_running_command(tmp_path: Path) -> None:
    sleep = require_program("sleep")
    marker = f"5.{uuid.uuid4().int % 10**8:08d}"
    home = make_home(
        tmp_path,
        f"name=master\ncommand.start={sleep} {marker}\ncommand.stop={sleep} 0\n"
        "command.timeout=60\n",
    )
    with Manager.from_cluster_home(
        home, "demo", host="db1", executor=LocalExecutor(), monitor_interval=0
    ) as manager:
        changing = threading.Thread(
            target=lambda: manager.update_datasource("db1", state="ONLINE"), daemon=True
        )
        changing.start()
        assert wait_until(lambda: processes_with(marker)), "the slow start never ran"
        held = dict(manager.held)
        states = {name: ds.state.value for name, ds in manager.datasources.items()}
        problems = dict(manager.problems)
        one = manager.datasource("db1")
        assert processes_with(marker), "the reads waited for the command to finish"
        assert held == {} and problems == {}
        assert states == {"db1": "ONLINE", "db2": "OFFLINE"} and one.state.value == "ONLINE"
        changing.join(60)
        assert manager.held == {"master": "db1"}


# -- failsafe on close is the Manager's, not the rule file's ---------------------------------


@pytest.fixture
def rules_without_failsafe(tmp_path: Path) -> Path:
    """The shipped rule file without its failsafe rule: a rule author who forgot it."""
    shipped = (shipped_rules_dir() / "FloatingIP.py").read_text()
    start = shipped.index('@rules.rule(\n    "FloatingIP: failsafe')
    assert "def failsafe" in shipped[start:]
    directory = tmp_path / "rules"
    directory.mkdir(mode=0o755)
    write_service(directory, "NoFailsafe.py", shipped[:start])
    return directory


def manager_on(network: FakeNetwork, home: Path, rules_dir: Path) -> Manager:
    return Manager.from_cluster_home(
        home, "demo", rules_dir=rules_dir, host="db1", executor=network.executor("db1"),
        monitor_interval=0,
    )  # fmt: skip


def test_close_releases_what_is_held_even_without_a_failsafe_rule(
    tmp_path: Path, rules_without_failsafe: Path
) -> None:
    network = FakeNetwork(["db1"], strict=True)
    manager = manager_on(network, make_home(tmp_path), rules_without_failsafe)
    manager.update_datasource("db1", state="ONLINE")
    assert VIP in network.addresses["db1"]
    result = manager.close()
    assert VIP not in network.addresses["db1"]
    assert [(o.service, o.action) for o in result.commands] == [("master", "stop")]
    assert manager.held == {}
    assert any("failsafe" in event.message for event in manager.history)


def test_close_in_maintenance_keeps_the_vip_even_without_a_failsafe_rule(
    tmp_path: Path, rules_without_failsafe: Path
) -> None:
    network = FakeNetwork(["db1"], strict=True)
    manager = manager_on(network, make_home(tmp_path), rules_without_failsafe)
    manager.update_datasource("db1", state="ONLINE")
    manager.set_policy("MAINTENANCE")
    manager.close()
    assert VIP in network.addresses["db1"]
