"""floatingip.ssh and the hooks' ssh options, without a network: the ssh command line built,
and what the hooks take from MHA's arguments and their own options.  The real runs through
sshd are in tests/integration/test_ssh.py."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from floatingip import CommandResult, UsageError
from floatingip.actions import duplicate_probe_argv, perform
from floatingip.errors import HostUnreachableError
from floatingip.hooks import TOOLS
from floatingip.hooks.core import HookContext, run_plan
from floatingip.hooks.remote import ssh_target
from floatingip.hosts import Hosts
from floatingip.service import load_service
from floatingip.ssh import SshExecutor, SshTarget
from floatingip.testing import RecordingExecutor
from floatingip.vocabulary import Action
from tests.conftest import require_program, wait_until
from tests.test_hooks import MHA_NEW, MHA_STOP, parse


def test_the_ssh_command_line() -> None:
    target = SshTarget(address="192.0.2.11", user="mysql", port=2222, identity="/k",
                       options=("-o", "ConnectTimeout=9"), connect_timeout=3)  # fmt: skip
    argv = SshExecutor("db1", target).ssh_argv(["sudo", "-n", "ip", "addr", "add", "x y"], 10)
    assert argv == (
        "ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=3", "-l", "mysql", "-p", "2222",
        "-i", "/k", "-o", "ConnectTimeout=9", "--", "192.0.2.11",
        "timeout -k 1 10 sudo -n ip addr add 'x y'",
    )  # fmt: skip
    # one string for the remote shell, which splits it back into exactly the argv
    assert shlex.split(argv[-1])[4:] == ["sudo", "-n", "ip", "addr", "add", "x y"]


def remote(argv: tuple[str, ...]) -> tuple[str, ...]:
    """The argv an ``ssh ... -- host 'timeout -k 1 N argv'`` runs on the host."""
    return tuple(shlex.split(argv[-1])[4:])


def answering(login: str | None) -> RecordingExecutor:
    """The local side of ssh: ``ssh -G`` resolves ``login`` (None: it fails); commands succeed."""

    def respond(argv: tuple[str, ...]) -> CommandResult:
        if "-G" in argv:
            if login is None:
                return CommandResult(argv, 255, "", "ssh: bad configuration")
            return CommandResult(argv, 0, f"host db1\nuser {login}\nport 22\n")
        return CommandResult(argv, 0)

    return RecordingExecutor(respond)


@pytest.mark.parametrize(
    ("user", "resolved", "as_root"),
    [("root", "x", True), ("postgres", "root", False), (None, "root", True),
     (None, "mysql", False), (None, None, False)],
)  # fmt: skip
def test_the_ssh_login_decides_whether_the_vip_commands_need_sudo(
    user: str | None, resolved: str | None, as_root: bool
) -> None:
    """The user given, else what ``ssh -G`` resolves (config User, else the local name); a
    login ssh cannot tell is not root (sudo -n, which root may run too)."""
    local = answering(resolved)
    executor = SshExecutor("db1", SshTarget(user=user), inner=local)
    assert executor.runs_as_root is as_root
    asked = [argv for argv in local.calls if "-G" in argv]
    assert len(asked) == (0 if user else 1)
    if not user:
        assert asked[0][:2] == ("ssh", "-G") and asked[0][-1] == "db1"
    guarded = Hosts("mgr", 5.0, lambda event: None).guard({"db1": executor})["db1"]
    assert guarded.runs_as_root is as_root  # type: ignore[attr-defined]


def test_the_real_ssh_resolves_the_login_from_its_configuration(tmp_path: Path) -> None:
    require_program("ssh", package="openssh-client")
    config = tmp_path / "ssh.config"
    config.write_text("Host db1\n  User postgres\nHost *\n  User root\n")
    target = SshTarget(options=("-F", str(config)))
    assert SshExecutor("db1", target).login == "postgres"
    assert SshExecutor("db1", target).runs_as_root is False
    assert SshExecutor("db2", target).runs_as_root is True
    assert SshExecutor("db1", SshTarget(user="root", options=target.options)).runs_as_root


SERVICE = "name=master\nvip.address=192.0.2.22/24\nvip.interface=eth0\nvip.arp.count=1\n"


@pytest.mark.parametrize(
    ("user", "setting", "sudo"),
    [("postgres", "", True), ("root", "", False), ("postgres", "vip.sudo=false\n", False),
     ("root", "vip.sudo=true\n", True)],
)  # fmt: skip
def test_the_vip_commands_over_ssh_take_sudo_from_the_login_unless_the_service_says(
    tmp_path: Path, user: str, setting: str, sudo: bool
) -> None:
    path = tmp_path / "master.properties"
    path.write_text(SERVICE + setting)
    service = load_service(path)
    local = answering(user)
    executor = SshExecutor("db1", SshTarget(user=user), inner=local)
    perform(service, Action.START, executor)  # the fake shows no VIP afterwards: fails, fine
    prefix = ("sudo", "-n") if sudo else ()
    assert (*prefix, "ip", "addr", "add", "192.0.2.22/24", "dev", "eth0") in [
        remote(argv) for argv in local.calls
    ]
    probe = duplicate_probe_argv(service, executor=executor)
    assert probe is not None and (probe[:2] == ("sudo", "-n")) is sudo


def test_a_timed_out_command_keeps_its_host_hung_until_it_cannot_run_there_any_more() -> None:
    """ssh gave up; the remote command may go on for lingers(timeout) s: until then nothing
    runs there and a start keeps the service from being taken elsewhere."""

    def respond(argv: tuple[str, ...]) -> CommandResult:
        hangs = "sleep" in argv[-1]
        return CommandResult(argv, None if hangs else 0, duration=0.5, timed_out=hangs)

    executor = SshExecutor("db1", SshTarget(user="root"), inner=RecordingExecutor(respond))
    assert executor.lingers(0.5) == 3  # ceil(0.5) + timeout's -k 1 + 1 s for a late start
    assert executor.lingers(10) == 12
    hosts = Hosts("mgr", 0.0, lambda event: None)
    guarded = hosts.guard({"db1": executor})["db1"]
    with hosts.acting("master", "start"), pytest.raises(HostUnreachableError):
        guarded.run(["sleep", "9"], timeout=0.5)
    with pytest.raises(HostUnreachableError, match="master start got no answer: it may run"):
        guarded.run(["true"])
    assert hosts.blocks_take("master", "db2") is not None

    def answers() -> bool:
        try:
            return guarded.run(["true"]).ok
        except HostUnreachableError:
            return False

    assert wait_until(answers, 60)
    assert hosts.blocks_take("master", "db2") is not None  # until a probe reads it again
    hosts.seen("master", "db1")
    assert hosts.blocks_take("master", "db2") is None


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
