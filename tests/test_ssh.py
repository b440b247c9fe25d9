"""floatingip.ssh and the hooks' ssh options, without a network: the ssh command line built,
and what the hooks take from MHA's arguments and their own options.  The real runs through
sshd are in tests/integration/test_ssh.py."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from floatingip import CommandResult, UsageError
from floatingip.errors import HostUnreachableError
from floatingip.hooks import TOOLS
from floatingip.hooks.core import HookContext, run_plan
from floatingip.hooks.remote import ssh_target
from floatingip.ssh import SshExecutor, SshTarget
from floatingip.testing import RecordingExecutor
from tests.test_hooks import MHA_NEW, MHA_STOP, parse


def test_the_ssh_command_line() -> None:
    target = SshTarget(address="192.0.2.11", user="mysql", port=2222, identity="/k",
                       options=("-o", "ConnectTimeout=9"), connect_timeout=3)  # fmt: skip
    argv = SshExecutor("db1", target).ssh_argv(["sudo", "-n", "ip", "addr", "add", "x y"], 10)
    assert argv == (
        "ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=3", "-l", "mysql", "-p", "2222",
        "-i", "/k", "-o", "ConnectTimeout=9", "--", "192.0.2.11",
        "timeout -k 1 12 sudo -n ip addr add 'x y'",
    )  # fmt: skip
    # one string for the remote shell, which splits it back into exactly the argv
    assert shlex.split(argv[-1])[4:] == ["sudo", "-n", "ip", "addr", "add", "x y"]


def test_the_transport_names_user_address_and_port() -> None:
    assert SshExecutor("db1").transport == "ssh db1:22"
    assert SshExecutor("db1", SshTarget(user="root", port=2200)).transport == "ssh root@db1:2200"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (SshTarget(address="-oProxyCommand=x"), "invalid host address"),
        (SshTarget(address="db1 db2"), "invalid host address"),
        (SshTarget(user="root;id"), "invalid user name"),
        (SshTarget(port=0), "port must be 1-65535"),
    ],
)
def test_bad_settings_are_refused(target: SshTarget, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        SshExecutor("db1", target)


def refused(argv: tuple[str, ...]) -> CommandResult:
    return CommandResult(argv, 255, "", "ssh: connect to host db1 port 22: Connection refused")


def test_exit_255_is_unreachable_and_check_raises_it() -> None:
    executor = SshExecutor("db1", inner=RecordingExecutor(refused))
    result = executor.run(["true"], check=False)
    assert result.argv == ("true",)  # the remote argv
    assert executor.unreachable(result) == "ssh: connect to host db1 port 22: Connection refused"
    with pytest.raises(HostUnreachableError, match="through ssh db1:22: ssh: connect"):
        executor.run(["true"])


def test_an_ssh_option_needs_ssh_and_takes_name_value() -> None:
    with pytest.raises(UsageError, match="--ssh-user is used only with --ssh"):
        ssh_target(parse("orchestrator", "--cluster=c", "--ssh-user=root", "PreFailoverProcesses",
                         "--failure-type=a", "--failed-host=b"))  # fmt: skip
    with pytest.raises(UsageError, match="NAME=VALUE"):
        ssh_target(parse("mha", "--cluster=c", "--ssh", "--ssh-option=-oX", "--command=stop"))
    assert ssh_target(parse("mha", "--cluster=c", "--command=stop")) is None


def mha_executor(home: Path, *argv: str) -> SshExecutor:
    args = parse("mha", "--cluster", "demo", *argv)
    context = HookContext(cluster_home=home, cluster="demo", this_host="mgr", ssh=ssh_target(args))
    plan = TOOLS["mha"][2](args, context)
    assert plan.host is not None
    executor = context.executor_for(plan.host, plan.ssh)
    assert isinstance(executor, SshExecutor)
    return executor


def test_mha_hook_reaches_each_master_as_mha_does(demo_home: Path) -> None:
    options = "--ssh_options=-o ConnectionAttempts=5 -F '/etc/my ssh'"
    stop = mha_executor(demo_home, "--ssh", "--command=stopssh", "--ssh_user=root", *MHA_STOP,
                        options)  # fmt: skip
    assert stop.transport == "ssh root@192.0.2.11:22"
    assert stop.target.options == ("-o", "ConnectionAttempts=5", "-F", "/etc/my ssh")
    start = mha_executor(demo_home, "--ssh", "--command=start", *MHA_STOP, *MHA_NEW,
                         "--orig_master_ssh_user=a", "--new_master_ssh_user=b",
                         "--new_master_ssh_ip=198.51.100.12",
                         "--new_master_ssh_port=2222")  # fmt: skip
    assert start.transport == "ssh b@198.51.100.12:2222"


def test_the_hooks_own_ssh_options_win_over_mhas(demo_home: Path) -> None:
    executor = mha_executor(demo_home, "--ssh", "--ssh-user=vip", "--ssh-port=23",
                            "--ssh-option=ConnectTimeout=2", "--ssh-key=/k", "--command=stopssh",
                            "--ssh_user=root", *MHA_STOP,
                            "--ssh_options=-o ConnectTimeout=9")  # fmt: skip
    assert executor.transport == "ssh vip@192.0.2.11:23"
    argv = executor.ssh_argv(["true"])
    # ssh keeps the first value it reads for a setting: the hook's before MHA's
    assert argv.index("ConnectTimeout=2") < argv.index("ConnectTimeout=9")
    assert argv[argv.index("-i") + 1] == "/k"


def test_without_ssh_an_other_host_is_not_reached(demo_home: Path) -> None:
    args = parse("mha", "--cluster", "demo", "--command=stop", *MHA_STOP)
    context = HookContext(cluster_home=demo_home, cluster="demo", this_host="mgr")
    report = run_plan(TOOLS["mha"][2](args, context), context)
    assert report.exit_code == 10 and "give --ssh" in report.line


def test_an_unreachable_master_is_not_reported_released(demo_home: Path) -> None:
    """Its state cannot be read, so nothing is believed held there and nothing is stopped:
    the hook must not say it is done (MHA would go on as if the VIP were gone)."""
    args = parse("mha", "--cluster", "demo", "--command=stop", *MHA_STOP)
    db1 = SshExecutor("db1", inner=RecordingExecutor(refused))
    context = HookContext(
        cluster_home=demo_home, cluster="demo", this_host="mgr", executors={"db1": db1},
        lock_dir=demo_home,
    )  # fmt: skip
    report = run_plan(TOOLS["mha"][2](args, context), context)
    assert report.exit_code == 10, report.line
    assert "no answer through ssh db1:22 (ssh: connect to host db1" in report.line
