"""floatingip.hooks: the one-shot hooks of Patroni, repmgr, MHA and orchestrator, without a
network (a RecordingExecutor stands for the host); the real-namespace contract tests are in
tests/integration/test_hooks_contract.py."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from floatingip import CommandResult, Manager, UsageError, cli
from floatingip.commands import Executor
from floatingip.dad import PROBE_SCRIPT
from floatingip.hooks import TOOLS, mha, patroni
from floatingip.hooks.core import (
    HookContext,
    HookLock,
    HookLockTimeout,
    Report,
    lock_path,
    run_plan,
)
from floatingip.testing import FakeNetwork, RecordingExecutor
from tests.conftest import PATIENCE, wait_until

VIP = "192.0.2.22/24"


def test_a_manager_without_failsafe_keeps_its_vip_on_close(demo_home: Path) -> None:
    host = RecordingExecutor()
    manager = Manager.from_cluster_home(
        demo_home, "demo", host="db1", executor=host, failsafe=False, monitor_interval=0
    )
    manager.update_datasource("db1", state="ONLINE")
    assert manager.held == {"master": "db1"}
    result = manager.close()
    assert result.ok and not result.commands
    assert VIP in host.addresses["eth0"]  # still there: the next one-shot finds it
    assert "keeping master" in manager.history[-1].message


def test_a_manager_with_failsafe_releases_its_vip_on_close(demo_home: Path) -> None:
    host = RecordingExecutor()
    with Manager.from_cluster_home(
        demo_home, "demo", host="db1", executor=host, monitor_interval=0
    ) as manager:
        manager.update_datasource("db1", state="ONLINE")
        assert VIP in host.addresses["eth0"]
    assert VIP not in host.addresses.get("eth0", {})


def test_failsafe_must_be_true_or_false(demo_home: Path) -> None:
    with pytest.raises(UsageError, match="failsafe"):
        Manager.from_cluster_home(demo_home, "demo", host="db1", failsafe="no")  # type: ignore[arg-type]


# -- the plans: each tool's arguments mapped to a datasource's role and state ------------------


def parse(tool: str, *argv: str) -> argparse.Namespace:
    return cli._parser().parse_args(["hook", tool, "--cluster-home", "-", *argv])


def context_for(home: Path, **hosts: RecordingExecutor) -> HookContext:
    return HookContext(
        cluster_home=home,
        cluster="demo",
        this_host="db1",
        executors=hosts,
        lock_dir=home,
    )


def planned(home: Path, tool: str, *argv: str) -> tuple[str | None, str | None, str | None]:
    """(datasource, role, state) the tool's arguments plan; (None, None, None): nothing."""
    plan = TOOLS[tool][2](parse(tool, *argv), context_for(home))
    role = plan.role.value if plan.role else None
    state = plan.state.value if plan.state else None
    return plan.datasource, role, state


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["on_role_change", "primary", "demo"], ("db1", "master", "ONLINE")),
        (["on_role_change", "master", "demo"], ("db1", "master", "ONLINE")),  # Patroni < 4
        (["on_role_change", "promoted", "demo"], ("db1", "master", "ONLINE")),  # 3.0.0
        (["on_start", "primary", "demo"], ("db1", "master", "ONLINE")),
        (["on_restart", "master", "demo"], ("db1", "master", "ONLINE")),
        (["on_role_change", "replica", "demo"], ("db1", "slave", "ONLINE")),
        (["on_role_change", "demoted", "demo"], ("db1", "slave", "ONLINE")),
        (["on_role_change", "standby_leader", "demo"], ("db1", "slave", "ONLINE")),
        (["on_start", "replica", "demo"], ("db1", "slave", "ONLINE")),
        (["on_stop", "primary", "demo"], ("db1", None, "OFFLINE")),
        (["--datasource", "db2", "on_start", "primary", "demo"], ("db2", "master", "ONLINE")),
        (["on_reload", "primary", "demo"], (None, None, None)),
        (["on_something_new", "primary", "demo"], (None, None, None)),
    ],
)
def test_patroni_callbacks_plan(
    demo_home: Path, argv: list[str], expected: tuple[str, ...]
) -> None:
    assert planned(demo_home, "patroni", "--cluster", "demo", *argv) == expected


PRIMARY = ("db1", "master", "ONLINE")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["1", "standby_promote", "1"], ("db1", "master", "ONLINE")),
        (
            ["1", "repmgrd_failover_promote", "1", "2026-11-28 01:00:00+00"],
            ("db1", "master", "ONLINE"),
        ),
        (
            ["1", "standby_switchover", "1", "ts", "node 1 promoted; node 2 demoted"],
            ("db1", "master", "ONLINE"),
        ),
        (["1", "primary_register", "1"], ("db1", "master", "ONLINE")),
        (["1", "node_rejoin", "1"], ("db1", "slave", "ONLINE")),
        (["1", "node_rejoin", "0"], ("db1", "slave", "ONLINE")),  # not the primary either way
        (["1", "standby_follow", "1"], ("db1", "slave", "ONLINE")),
        (["1", "repmgrd_failover_follow", "1"], ("db1", "slave", "ONLINE")),
        (["1", "standby_promote", "0"], (None, None, None)),  # failed: the primary did not move
        (["1", "repmgrd_start", "1"], (None, None, None)),
        (["1", "cluster_cleanup", "1"], (None, None, None)),
        (["--node-id", "2", "1", "standby_promote", "1"], (None, None, None)),
        # floatingip's own, from service_stop_command: a switchover notifies nothing on the
        # old primary, whose stop is the only moment it can release the VIP
        (["1", "service_stop", "1"], ("db1", None, "OFFLINE")),
        (["1", "service_stop", "0"], ("db1", None, "OFFLINE")),
    ],
)
def test_repmgr_events_plan(demo_home: Path, argv: list[str], expected: tuple[str, ...]) -> None:
    assert planned(demo_home, "repmgr", "--cluster", "demo", *argv) == expected


MHA_STOP = ["--orig_master_host=db1", "--orig_master_ip=192.0.2.11", "--orig_master_port=3306"]
MHA_NEW = ["--new_master_host=db2", "--new_master_ip=192.0.2.12", "--new_master_port=3306"]


@pytest.mark.parametrize(
    ("argv", "expected", "failure_exit"),
    [
        (["--command=stopssh", "--ssh_user=root", *MHA_STOP], ("db1", None, "OFFLINE"), 1),
        (["--command=stop", *MHA_STOP], ("db1", None, "OFFLINE"), 10),
        (
            ["--command=start", "--ssh_user=root", *MHA_STOP, *MHA_NEW,
             "--new_master_user='mha'", "--new_master_password=secret"],
            ("db2", "master", "ONLINE"), 1,
        ),
        (["--command=status", "--ssh_user=root", *MHA_STOP], ("db1", None, None), 1),
        (  # an online switch's stop, with every option MHA 0.58 passes
            ["--command=stop", *MHA_STOP, "--orig_master_user=mha", *MHA_NEW,
             "--new_master_user=mha", "--orig_master_ssh_user=root", "--new_master_ssh_user=root",
             "--orig_master_is_new_slave", "--orig_master_password=x", "--new_master_password=y",
             "--orig_master_ssh_port=2222", "--ssh_options=-o ConnectTimeout=5"],
            ("db1", None, "OFFLINE"), 10,
        ),
        (["--command=stop", "--orig_master_host=mysql1", "--orig_master_ip=192.0.2.11"],
         ("db1", None, "OFFLINE"), 10),
    ],
)  # fmt: skip
def test_mha_commands_plan(
    demo_home: Path, argv: list[str], expected: tuple[str, ...], failure_exit: int
) -> None:
    with_address = demo_home / "conf" / "cluster" / "demo" / "datasource" / "db1.properties"
    with_address.write_text("name=db1\nhost=192.0.2.11\nrole=master\n")
    if argv[1] != "--orig_master_host=mysql1":
        with_address.write_text("name=db1\nrole=master\n")
    plan = mha.plan(parse("mha", "--cluster", "demo", *argv), context_for(demo_home))
    role = plan.role.value if plan.role else None
    state = plan.state.value if plan.state else None
    assert (plan.datasource, role, state) == expected
    assert plan.failure_exit == failure_exit


def orc(hook: str, failure: str, successor: str, successful: str) -> list[str]:
    """An orchestrator line's arguments once its placeholders are replaced."""
    return [hook, "--failure-type", failure, "--failed-host", "db1",
            "--successor-host", successor, "--is-successful", successful]  # fmt: skip


NOTHING = (None, None, None)
FAILED_DOWN, NEW_MASTER = ("db1", None, "OFFLINE"), ("db2", "master", "ONLINE")
NO_SUCCESSOR = "{successorHost}"  # orchestrator leaves the placeholder when none was promoted


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (orc("PreFailoverProcesses", "DeadMaster", NO_SUCCESSOR, "false"), FAILED_DOWN),
        (orc("PreGracefulTakeoverProcesses", "DeadMaster", "db2", "true"), FAILED_DOWN),
        (orc("PostMasterFailoverProcesses", "DeadMaster", "db2", "true"), NEW_MASTER),
        (orc("PostFailoverProcesses", "DeadMasterAndSomeReplicas", "db2", "true"), NEW_MASTER),
        (orc("PostGracefulTakeoverProcesses", "DeadMaster", "db2", "true"), NEW_MASTER),
        (orc("PostFailoverProcesses", "DeadMaster", NO_SUCCESSOR, "false"), NOTHING),
        (orc("PostUnsuccessfulFailoverProcesses", "DeadMaster", NO_SUCCESSOR, "false"), NOTHING),
        (orc("PostFailoverProcesses", "DeadIntermediateMaster", "db2", "true"), NOTHING),
        (orc("OnFailureDetectionProcesses", "DeadMaster", NO_SUCCESSOR, "false"), NOTHING),
    ],
)  # fmt: skip
def test_orchestrator_hooks_plan(
    demo_home: Path, argv: list[str], expected: tuple[str, ...]
) -> None:
    assert planned(demo_home, "orchestrator", "--cluster", "demo", *argv) == expected


@pytest.mark.parametrize(
    ("tool", "argv", "message"),
    [
        ("patroni", ["on_role_change", "leader", "demo"], "unknown Patroni role 'leader'"),
        ("patroni", ["--datasource", "db9", "on_start", "primary", "demo"], "no datasource"),
        ("repmgr", ["one", "standby_promote", "1"], "node id must be a number"),
        ("repmgr", ["1", "standby_promote", "yes"], "success must be 1 or 0"),
        ("mha", ["--command=start", *MHA_STOP], "needs --new_master_host"),
        ("mha", ["--command=stop", "--orig_master_host=db7"], "no datasource is named or hosted"),
        ("mha", ["--command=stop", *MHA_STOP[:1], "--orig_master_port=x"], "a port number"),
        ("orchestrator", orc("PostFailover", "DeadMaster", "db2", "true"), "unknown orchestrator"),
        ("orchestrator", orc("PostFailoverProcesses", "DeadMaster", "db2", "yes"), "true or false"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_by_name(
    demo_home: Path, tool: str, argv: list[str], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        TOOLS[tool][2](parse(tool, "--cluster", "demo", *argv), context_for(demo_home))


def test_unknown_options_and_missing_arguments_exit_2_naming_them(
    demo_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(demo_home)
    for argv, named in [
        (["mha", "--cluster", "demo", "--command=start", "--new_master_hots=x"], "master_hots"),
        (["mha", "--cluster", "demo", "--command=restart"], "restart"),
        (["patroni", "on_start", "primary"], "SCOPE"),
        (["repmgr", "--cluster", "demo", "1"], "EVENT"),
    ]:  # fmt: skip
        with pytest.raises(SystemExit) as exited:
            cli.main(["hook", argv[0], "--cluster-home", home, *argv[1:]])
        assert exited.value.code == 2
        assert named in capsys.readouterr().err


# -- the one-shot runs, on a RecordingExecutor -------------------------------------------------


def run(home: Path, tool: str, *argv: str, **hosts: RecordingExecutor) -> Report:
    context = context_for(home, **hosts)
    return run_plan(TOOLS[tool][2](parse(tool, "--cluster", "demo", *argv), context), context)


def changes(host: RecordingExecutor) -> list[str]:
    return [call[3] for call in host.calls if call[:3] == ("sudo", "-n", "ip") and call[3] != "-o"]


def test_patroni_primary_takes_the_vip_and_keeps_it_and_a_second_run_changes_nothing(
    demo_home: Path,
) -> None:
    db1 = RecordingExecutor()
    first = run(demo_home, "patroni", "on_role_change", "primary", "demo", db1=db1)
    assert first.exit_code == 0, first.line
    assert VIP in db1.addresses["eth0"]  # kept after the one-shot manager closed
    assert "master start on db1 ok" in first.line and "db1 holds master" in first.line
    calls = len(db1.calls)
    again = run(demo_home, "patroni", "on_role_change", "primary", "demo", db1=db1)
    assert again.exit_code == 0, again.line
    assert "nothing ran" in again.line and "db1 holds master" in again.line
    assert not [c for c in db1.calls[calls:] if c[:4] in {("sudo", "-n", "ip", "addr")}]
    assert VIP in db1.addresses["eth0"]


def test_a_hook_that_finds_its_vip_where_it_belongs_logs_no_drift_warning(
    demo_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each one-shot starts with no belief: the VIP a previous run left is what it expects to
    find, not drift (Patroni keeps the hook's log: a warning on every callback misleads)."""
    db1 = RecordingExecutor()
    run(demo_home, "patroni", "on_start", "primary", "demo", db1=db1)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="floatingip"):
        again = run(demo_home, "patroni", "on_role_change", "primary", "demo", db1=db1)
    assert again.exit_code == 0, again.line
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []
    assert any("found on db1 at start" in r.getMessage() for r in caplog.records), caplog.text


def test_a_vip_found_on_two_hosts_at_start_is_still_a_drift_warning(
    demo_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    network = FakeNetwork(["db1", "db2"])
    for host in ("db1", "db2"):
        network.addresses[host].add(VIP)
    with caplog.at_level(logging.INFO, logger="floatingip"):
        Manager.from_cluster_home(
            demo_home, "demo", host="db1", executor=network.executor("db1"),
            executors={"db2": network.executor("db2")}, monitor_interval=0,
        ).close()  # fmt: skip
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("drift: expected on no host, found on db1, db2" in w for w in warnings), warnings


def test_patroni_demotion_and_stop_release_the_vip(demo_home: Path) -> None:
    for argv in (["on_role_change", "replica", "demo"], ["on_stop", "primary", "demo"]):
        db1 = RecordingExecutor()
        run(demo_home, "patroni", "on_start", "primary", "demo", db1=db1)
        report = run(demo_home, "patroni", *argv, db1=db1)
        assert report.exit_code == 0, report.line
        assert VIP not in db1.addresses.get("eth0", {})
        assert "master stop on db1 ok" in report.line and "db1 holds nothing" in report.line


def test_nothing_to_do_exits_0_and_runs_nothing(demo_home: Path) -> None:
    db1 = RecordingExecutor()
    report = run(demo_home, "patroni", "on_reload", "primary", "demo", db1=db1)
    assert report.exit_code == 0 and "nothing to do: a reload changes no role" in report.line
    assert db1.calls == []


def test_a_failed_start_exits_non_zero_with_the_reason(demo_home: Path) -> None:
    def refuse(argv: tuple[str, ...]) -> CommandResult:
        if "add" in argv:
            return CommandResult(argv, 1, "", "sudo: a password is required", 0.0)
        return RecordingExecutor().run(argv, check=False)

    report = run(demo_home, "patroni", "on_role_change", "primary", "demo",
                 db1=RecordingExecutor(refuse))  # fmt: skip
    assert report.exit_code == 1
    assert "FAILED" in report.line and "a password is required" in report.line


def test_mha_stop_on_an_unreachable_master_exits_10_so_the_failover_goes_on(
    demo_home: Path,
) -> None:
    report = run(demo_home, "mha", "--command=stop", *MHA_STOP)  # db1 is this host...
    assert report.exit_code == 0  # ...reached by its own executor here
    context = HookContext(cluster_home=demo_home, cluster="demo", this_host="manager")
    plan = mha.plan(parse("mha", "--cluster", "demo", "--command=stop", *MHA_STOP), context)
    unreachable = run_plan(plan, context)
    assert unreachable.exit_code == 10
    assert "cannot be reached from 'manager'" in unreachable.line


def test_mha_status_only_looks(demo_home: Path) -> None:
    db1 = RecordingExecutor()
    report = run(demo_home, "mha", "--command=status", "--ssh_user=root", *MHA_STOP, db1=db1)
    assert report.exit_code == 0, report.line
    assert "master status on db1 ok" in report.line
    assert changes(db1) == []


def test_the_lock_bounds_the_wait_and_changes_nothing(demo_home: Path) -> None:
    lock_file = lock_path(demo_home, "demo", "db1")
    db1 = RecordingExecutor()
    with HookLock(lock_file, 1, "the test"):
        outcome: list[BaseException] = []

        def hook() -> None:  # not the main thread: the polling wait
            context = dataclasses.replace(context_for(demo_home, db1=db1), lock_timeout=0.2)
            argv = parse("patroni", "--cluster", "demo", "on_start", "primary", "demo")
            try:
                run_plan(patroni.plan(argv, context), context)
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=hook)
        worker.start()
        worker.join()
        assert isinstance(outcome[0], HookLockTimeout)
        assert "pid" in str(outcome[0]) and "the test" in str(outcome[0])
        second = HookLock(lock_file, 0.2, "second")
        with pytest.raises(HookLockTimeout, match="nothing was changed"):  # the main thread's
            second.__enter__()
    assert db1.calls == []
    with HookLock(lock_file, 0.2, "free again"):
        pass


def test_a_start_refused_while_the_old_host_has_the_vip_waits_for_its_release(
    demo_home: Path,
) -> None:
    """Patroni calls the new primary's callback without waiting for the old one's."""
    network = FakeNetwork(["db1", "db2"])
    network.addresses["db1"].add(VIP)
    db2 = ProbeCounter(network.executor("db2"))
    context = dataclasses.replace(context_for(demo_home, db2=db2), release_wait=PATIENCE)
    argv = parse("patroni", "--datasource", "db2", "on_role_change", "primary", "demo")
    reports: list[Report] = []
    worker = threading.Thread(
        target=lambda: reports.append(run_plan(patroni.plan(argv, context), context))
    )
    worker.start()
    assert wait_until(lambda: db2.probes >= 2)  # refused, and asking again
    assert network.holders(VIP) == ["db1"]
    network.addresses["db1"].discard(VIP)  # the old primary's on_stop ran
    worker.join()
    assert reports[0].exit_code == 0, reports[0].line
    assert network.holders(VIP) == ["db2"]
    assert "master start on db2 ok" in reports[0].line


class ProbeCounter:
    """An executor that counts the duplicate address probes it runs."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.probes = 0

    def run(
        self, argv: Sequence[str], *, timeout: float = 10.0, check: bool = True
    ) -> CommandResult:
        if PROBE_SCRIPT in argv:
            self.probes += 1
        return self.inner.run(argv, timeout=timeout, check=check)


def test_without_a_wait_the_refused_start_fails_at_once(demo_home: Path) -> None:
    network = FakeNetwork(["db1", "db2"])
    network.addresses["db1"].add(VIP)
    context = context_for(demo_home, db2=network.executor("db2"))
    argv = parse("patroni", "--datasource", "db2", "on_role_change", "primary", "demo")
    report = run_plan(patroni.plan(argv, context), context)
    assert report.exit_code == 1
    assert "FAILED" in report.line and "another host still holds it" in report.line
    assert network.holders(VIP) == ["db1"]


def test_the_hook_log_says_a_repeated_message_once_in_a_row() -> None:
    from floatingip.hooks import _DropRepeats

    drop = _DropRepeats()

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord(
            "floatingip.dispatch", logging.ERROR, __file__, 1, message, (), None
        )

    kept = [drop.filter(record(m)) for m in ("refused", "refused", "refused", "started", "refused")]
    assert kept == [True, False, False, True, True]
