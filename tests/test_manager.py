"""floatingip.manager with the shipped FloatingIP rules and a RecordingExecutor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from floatingip import (
    CommandResult,
    ConfigError,
    DataSource,
    DataSourceError,
    Event,
    FloatingIPError,
    Manager,
    PolicyMode,
    State,
    UsageError,
    load_datasources,
    load_services,
)
from floatingip.dad import PROBE_SCRIPT
from floatingip.errors import DataSourceDefinitionError, EngineError
from floatingip.rules import load_rules, shipped_rules_dir
from floatingip.testing import RecordingExecutor
from tests.conftest import vip_service_text, write_service

START = ("sudo", "-n", "ip", "addr", "add", "192.0.2.22/24", "dev", "eth0", "label", "eth0:0")
STOP = ("sudo", "-n", "ip", "addr", "del", "192.0.2.22/24", "dev", "eth0")
STATUS = ("ip", "-o", "addr", "show", "dev", "eth0")


def is_check(call: tuple[str, ...]) -> bool:
    """A status probe or a duplicate address check: looks, changes nothing."""
    return call == STATUS or PROBE_SCRIPT in call


def actions(recorder: RecordingExecutor) -> list[str]:
    """The start and stop commands run, in order; checks are left out."""
    names = {START: "start", STOP: "stop"}
    return [names.get(call, " ".join(call)) for call in recorder.calls if not is_check(call)]


@pytest.fixture
def recorder() -> RecordingExecutor:
    return RecordingExecutor()


@pytest.fixture
def manager(demo_home: Path, recorder: RecordingExecutor) -> Iterator[Manager]:
    with Manager.from_cluster_home(demo_home, "demo", host="db1", executor=recorder) as manager:
        yield manager


def test_the_issue_sequence_runs_start_stop_four_times(
    manager: Manager, recorder: RecordingExecutor
) -> None:
    manager.update_datasource("db1", state="ONLINE")
    manager.update_datasource("db2", state="ONLINE")
    manager.update_datasource("db1", state="OFFLINE")
    manager.update_datasource("db1", state="ONLINE")
    manager.set_policy("MAINTENANCE")
    manager.update_datasource("db1", state="OFFLINE")
    manager.set_policy("AUTOMATIC")
    manager.update_datasource("db1", state="ONLINE")
    manager.update_datasource("db1", role="slave")
    manager.update_datasource("db1", role="master")
    manager.update_datasource("db1", state="FAILED")
    assert actions(recorder) == ["start", "stop"] * 4
    assert manager.held == {}


def test_master_online_takes_the_vip_and_reports_it(
    manager: Manager, recorder: RecordingExecutor
) -> None:
    result = manager.update_datasource("db1", state="ONLINE")
    assert result.ok
    (outcome,) = result.commands
    assert (outcome.service, outcome.action, outcome.datasource) == ("master", "start", "db1")
    assert (
        outcome.argv == START and outcome.rule == "FloatingIP: the master on this host goes ONLINE"
    )
    assert manager.held == {"master": "db1"}
    assert manager.datasources["db1"].state is State.ONLINE


@pytest.mark.parametrize("state", ["OFFLINE", "FAILED", "SHUNNED", "STOPPED", "SUSPECT", "UNKNOWN"])
def test_any_state_but_online_releases_the_vip(
    manager: Manager, recorder: RecordingExecutor, state: str
) -> None:
    manager.update_datasource("db1", state="ONLINE")
    result = manager.update_datasource("db1", state=state)
    assert [outcome.action for outcome in result.commands] == ["stop"]
    assert actions(recorder) == ["start", "stop"]
    assert manager.held == {}


def test_role_change_releases_and_promotion_takes(
    manager: Manager, recorder: RecordingExecutor
) -> None:
    manager.update_datasource("db1", state="ONLINE")
    manager.update_datasource("db1", role="slave")
    assert actions(recorder) == ["start", "stop"]
    manager.update_datasource("db1", role="master")
    assert actions(recorder) == ["start", "stop", "start"]


def test_datasource_on_another_host_runs_nothing_here(
    manager: Manager, recorder: RecordingExecutor
) -> None:
    manager.update_datasource("db2", role="master")
    manager.update_datasource("db2", state="ONLINE")
    manager.update_datasource("db2", state="FAILED")
    assert actions(recorder) == []


def test_same_state_again_retries_a_failed_start(demo_home: Path) -> None:
    failing = True

    def respond(argv: tuple[str, ...]) -> CommandResult:
        if failing and argv == START:
            return CommandResult(argv, 1, stderr="sudo: a password is required\n")
        return CommandResult(argv, 0)

    recorder = RecordingExecutor(respond)
    with Manager.from_cluster_home(demo_home, "demo", host="db1", executor=recorder) as manager:
        result = manager.update_datasource("db1", state="ONLINE")
        assert not result.ok
        assert "NOPASSWD" in result.errors[0] and manager.held == {}
        failing = False
        assert manager.update_datasource("db1", state="ONLINE").ok
        assert manager.held == {"master": "db1"}


def test_a_failed_command_is_recorded_never_raised(demo_home: Path) -> None:
    def respond(argv: tuple[str, ...]) -> CommandResult:
        if is_check(argv):
            return CommandResult(argv, 0)
        return CommandResult(argv, 2, stderr="RTNETLINK answers: Operation not permitted\n")

    events: list[Event] = []
    manager = Manager.from_cluster_home(
        demo_home, "demo", host="db1", executor=RecordingExecutor(respond)
    )
    manager.add_listener(events.append)
    result = manager.update_datasource("db1", state="ONLINE")
    assert not result.ok and "Operation not permitted" in result.errors[0]
    failed = [event for event in manager.history if event.kind == "command"]
    assert len(failed) == 1 and not failed[0].ok and failed[0].outcome is not None
    assert failed[0].outcome.result is not None and failed[0].outcome.result.exit_code == 2
    assert [event.kind for event in events] == ["datasource", "command"]
    # the manager keeps working: a later change still applies
    manager.update_datasource("db1", state="OFFLINE")
    assert manager.datasources["db1"].state is State.OFFLINE
    manager.close()


def test_a_missing_program_is_an_outcome_not_an_exception(
    demo_home: Path, service_dir: Path
) -> None:
    write_service(
        service_dir,
        "master.properties",
        "name=master\ncommand.start=no-such-program-xyz up\ncommand.stop=no-such-program-xyz dn\n",
    )
    with Manager.from_cluster_home(demo_home, "demo", host="db1") as manager:
        result = manager.update_datasource("db1", state="ONLINE")
        assert "command not found: 'no-such-program-xyz'" in result.errors[0]


def test_maintenance_runs_nothing_and_leaving_it_reconciles(
    manager: Manager, recorder: RecordingExecutor
) -> None:
    manager.set_policy(PolicyMode.MAINTENANCE)
    manager.update_datasource("db1", state="ONLINE")
    assert actions(recorder) == []
    result = manager.set_policy("automatic")
    assert [outcome.action for outcome in result.commands] == ["start"]
    assert manager.policy is PolicyMode.AUTOMATIC


def test_close_releases_the_vip_failsafe(demo_home: Path, recorder: RecordingExecutor) -> None:
    manager = Manager.from_cluster_home(demo_home, "demo", host="db1", executor=recorder)
    manager.update_datasource("db1", state="ONLINE")
    result = manager.close()
    assert [outcome.action for outcome in result.commands] == ["stop"]
    assert actions(recorder) == ["start", "stop"]
    assert manager.closed
    with pytest.raises(FloatingIPError, match="closed"):
        manager.update_datasource("db1", state="OFFLINE")
    assert manager.close().commands == ()


def test_close_in_maintenance_keeps_the_vip(demo_home: Path, recorder: RecordingExecutor) -> None:
    with Manager.from_cluster_home(demo_home, "demo", host="db1", executor=recorder) as manager:
        manager.update_datasource("db1", state="ONLINE")
        manager.set_policy("MAINTENANCE")
    assert actions(recorder) == ["start"]


def test_bad_input_raises_and_changes_nothing(
    manager: Manager, recorder: RecordingExecutor
) -> None:
    before, history = dict(manager.datasources), manager.history
    with pytest.raises(DataSourceError, match=r"unknown datasource 'db9' .*known: db1, db2"):
        manager.update_datasource("db9", state="ONLINE")
    with pytest.raises(DataSourceError, match="unknown state 'UP'"):
        manager.update_datasource("db1", state="UP")
    with pytest.raises(DataSourceError, match="unknown role 'primary'"):
        manager.update_datasource("db1", role="primary", state="ONLINE")
    with pytest.raises(DataSourceError, match="needs a role or a state"):
        manager.update_datasource("db1")
    with pytest.raises(DataSourceError, match="unknown policy mode"):
        manager.set_policy("sometimes")
    assert dict(manager.datasources) == before and actions(recorder) == []
    assert manager.history == history


def test_a_rule_file_that_raises_is_reported_and_others_still_work(
    demo_home: Path, tmp_path: Path, recorder: RecordingExecutor
) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir(mode=0o755)
    (rules_dir / "FloatingIP.py").write_bytes((shipped_rules_dir() / "FloatingIP.py").read_bytes())
    (rules_dir / "Broken.py").write_text(
        "from floatingip.rules import RuleSet, c, datasource\n"
        "rules = RuleSet('Broken')\n"
        "@rules.rule('Broken: on any change', c.ds << datasource())\n"
        "def oops(ctx):\n"
        "    return ctx.no_such_alias\n"
    )
    events: list[Event] = []
    with Manager.from_cluster_home(
        demo_home, "demo", rules_dir=rules_dir, host="db1", executor=recorder
    ) as manager:
        manager.add_listener(events.append)
        result = manager.update_datasource("db1", state="ONLINE")
    assert actions(recorder) == ["start", "stop"]
    assert not result.ok
    assert "rule 'Broken: on any change'" in result.errors[0]
    assert (
        "raised at" in result.errors[0]
        and "Broken.py:5" in result.errors[0]
        and "no fact 'no_such_alias'" in result.errors[0]
    )
    assert [event.kind for event in events if not event.ok] == ["rule-error"]


def test_a_listener_that_raises_does_not_break_the_manager(
    manager: Manager, recorder: RecordingExecutor
) -> None:
    def bad_listener(event: Event) -> None:
        raise RuntimeError("listener bug")

    manager.add_listener(bad_listener)
    assert manager.update_datasource("db1", state="ONLINE").ok
    assert actions(recorder) == ["start"]


def test_two_managers_in_one_process_are_independent(demo_home: Path) -> None:
    on_db1, on_db2 = RecordingExecutor(), RecordingExecutor()
    with (
        Manager.from_cluster_home(demo_home, "demo", host="db1", executor=on_db1) as first,
        Manager.from_cluster_home(demo_home, "demo", host="db2", executor=on_db2) as second,
    ):
        first.update_datasource("db1", state="ONLINE")
        assert (actions(on_db1), actions(on_db2)) == (["start"], [])
        second.update_datasource("db2", role="master", state="ONLINE")
        assert (actions(on_db1), actions(on_db2)) == (["start"], ["start"])
        assert first.datasources["db2"].state is State.OFFLINE
    # each failsafe released its own
    assert (actions(on_db1), actions(on_db2)) == (["start", "stop"], ["start", "stop"])


def test_rules_that_need_an_undefined_service_refuse_to_start(demo_home: Path) -> None:
    services = load_services(demo_home, "demo")
    services.pop("master")
    with pytest.raises(
        ConfigError, match="acts on service 'master', which cluster 'demo' does not"
    ):
        Manager(cluster="demo", services=services, rulesets=load_rules(shipped_rules_dir()))


def test_history_is_bounded(demo_home: Path, recorder: RecordingExecutor) -> None:
    with Manager.from_cluster_home(
        demo_home, "demo", host="db1", executor=recorder, history_size=5
    ) as manager:
        for _ in range(10):
            manager.update_datasource("db2", state="ONLINE")
        assert len(manager.history) == 5


def test_datasources_can_be_declared_through_the_api(
    manager: Manager, recorder: RecordingExecutor
) -> None:
    manager.add_datasource("db3", role="slave", host="db1")
    with pytest.raises(DataSourceError, match="already exists"):
        manager.add_datasource("db3", role="slave")
    manager.update_datasource("db3", role="master", state="ONLINE")
    assert manager.held == {"master": "db3"}


def test_a_datasource_whose_fact_id_collides_is_refused(manager: Manager) -> None:
    from tests.test_engine import COLLIDING_NAMES

    first, second = COLLIDING_NAMES
    manager.add_datasource(first, role="slave")
    with pytest.raises(EngineError, match="same 32-bit identity"):
        manager.add_datasource(second, role="slave")
    assert first in manager.datasources and second not in manager.datasources


def test_vip_services_can_be_tested_with_the_recording_executor(
    cluster_home: Path, service_dir: Path
) -> None:
    write_service(
        service_dir,
        "master.properties",
        "name=master\nvip.address=192.0.2.22/24\nvip.interface=eth0\nvip.sudo=false\n",
    )
    recorder = RecordingExecutor()
    with Manager.from_cluster_home(cluster_home, "demo", host="db1", executor=recorder) as manager:
        manager.add_datasource("db1", role="master")
        assert manager.update_datasource("db1", state="ONLINE").ok
        assert recorder.addresses["eth0"] == {"192.0.2.22/24": "eth0"}
        assert manager.update_datasource("db1", state="OFFLINE").ok
        assert recorder.addresses["eth0"] == {}


# -- names whose fact identity collides with another fact's (issue 11, item 1) ---------------


def stored_ids(manager: Manager) -> dict[str, list[str]]:
    """The ids durable_rules really holds, per ruleset (what the rules can still match)."""
    engine = manager._engine
    return {
        name: sorted(fact["id"] for fact in engine._host.get_facts(name))
        for name in engine.ruleset_names
    }


@pytest.mark.parametrize(
    "target", ["service:master", "manager", "policy", "datasource:db1", "datasource:db2"]
)
def test_a_name_colliding_with_any_fact_is_refused_and_the_vip_still_follows(
    demo_home: Path, recorder: RecordingExecutor, target: str
) -> None:
    """A refused name deleted the fact it collided with: with service:master gone, db1 going
    OFFLINE fired nothing and close() released nothing; with the manager fact gone, the master
    never took the VIP."""
    from tests.test_engine import colliding_name

    name = colliding_name(target)
    with Manager.from_cluster_home(demo_home, "demo", host="db1", executor=recorder) as manager:
        manager.update_datasource("db1", state="ONLINE")
        before = (stored_ids(manager), manager._engine.facts, dict(manager.datasources))
        history = manager.history
        with pytest.raises(EngineError, match=rf"datasource:{name}.*same 32-bit identity as"):
            manager.add_datasource(name, role="master", host="db1", state="ONLINE")
        after = (stored_ids(manager), manager._engine.facts, dict(manager.datasources))
        assert after == before and manager.history == history
        with pytest.raises(DataSourceError, match="unknown datasource"):
            manager.update_datasource(name, state="OFFLINE")
        manager.update_datasource("db1", state="OFFLINE")
        manager.update_datasource("db1", state="ONLINE")
        assert stored_ids(manager) == before[0]
    assert actions(recorder) == ["start", "stop", "start", "stop"]  # the last one: failsafe


@pytest.mark.parametrize(
    "target", ["service:master", "manager", "policy", "datasource:db1", "sid-0"]
)
def test_a_declared_datasource_colliding_with_any_fact_refuses_the_manager_before_it_acts(
    demo_home: Path, recorder: RecordingExecutor, target: str
) -> None:
    from tests.test_engine import colliding_name

    name = colliding_name(target)
    declared = list(load_datasources(demo_home, "demo").values())
    declared.append(DataSource(cluster="demo", name=name, host="db1", role="slave"))
    with pytest.raises(EngineError, match=rf"datasource:{name}.*same 32-bit identity as"):
        Manager(
            cluster="demo",
            services=load_services(demo_home, "demo"),
            rulesets=load_rules(shipped_rules_dir()),
            datasources=declared,
            host="db1",
            executor=recorder,
            states={"db1": "ONLINE", name: "ONLINE"},
            roles={name: "master"},
        )
    assert recorder.calls == []


@pytest.mark.parametrize(
    "target", ["service:master", "manager", "policy", "datasource:db2", "sid-0"]
)
def test_a_datasource_file_colliding_with_any_fact_is_refused_naming_the_file(
    demo_home: Path, recorder: RecordingExecutor, target: str
) -> None:
    from tests.test_engine import colliding_name

    name = colliding_name(target)
    path = write_service(
        demo_home / "conf" / "cluster" / "demo" / "datasource",
        f"{name}.properties",
        f"name={name}\nhost=db1\nrole=master\n",
    )
    with pytest.raises(DataSourceDefinitionError, match="same 32-bit identity") as raised:
        Manager.from_cluster_home(demo_home, "demo", host="db1", executor=recorder)
    assert str(path) in str(raised.value) and f"'datasource:{name}'" in str(raised.value)
    assert recorder.calls == []


@pytest.mark.parametrize("target", ["manager", "policy", "datasource:db1", "sid-0"])
def test_a_service_file_colliding_with_any_fact_is_refused_naming_the_file(
    demo_home: Path, service_dir: Path, recorder: RecordingExecutor, target: str
) -> None:
    from tests.test_engine import colliding_name

    name = colliding_name(target, "service:")
    text = vip_service_text(name=name, vip="192.0.2.23", label=1)
    path = write_service(service_dir, f"{name}.properties", text)
    with pytest.raises(ConfigError, match="same 32-bit identity") as raised:
        Manager.from_cluster_home(demo_home, "demo", host="db1", executor=recorder)
    assert str(path) in str(raised.value) and f"'service:{name}'" in str(raised.value)
    assert recorder.calls == []


# -- the supervisor thread (issue 11, item 9) ------------------------------------------------


def test_recover_brings_a_datasource_back_online_as_a_slave_if_another_is_master(
    manager: Manager, recorder: RecordingExecutor
) -> None:
    manager.update_datasource("db1", state="ONLINE")
    manager.update_datasource("db1", state="FAILED")  # the VIP is released
    manager.update_datasource("db2", role="master", state="ONLINE")
    result = manager.recover("db1")
    assert result.ok and manager.datasource("db1").state is State.ONLINE
    assert manager.datasource("db1").role.value == "slave"  # db2 is the master now
    assert manager.held == {} and actions(recorder) == ["start", "stop"]
    with pytest.raises(UsageError, match="cannot recover 'db1': it is already ONLINE"):
        manager.recover("db1")


def test_recover_keeps_the_role_when_no_other_datasource_is_master(
    manager: Manager, recorder: RecordingExecutor
) -> None:
    manager.update_datasource("db1", state="SHUNNED")
    assert manager.recover("db1").ok
    assert manager.datasource("db1").role.value == "master" and manager.held == {"master": "db1"}


def test_welcome_brings_back_only_a_shunned_datasource(
    manager: Manager, recorder: RecordingExecutor
) -> None:
    with pytest.raises(FloatingIPError, match="cannot welcome 'db1': it is OFFLINE, not SHUNNED"):
        manager.welcome("db1")
    assert recorder.calls == [] or actions(recorder) == []
    manager.update_datasource("db1", state="SHUNNED")
    assert manager.welcome("db1").ok
    assert manager.datasource("db1").state is State.ONLINE and manager.held == {"master": "db1"}
    with pytest.raises(DataSourceError, match="unknown datasource 'db9'"):
        manager.welcome("db9")
