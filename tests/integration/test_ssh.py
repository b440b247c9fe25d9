"""SshExecutor and the MHA and orchestrator hooks over ssh, against real sshd in sandbox
namespaces (ssh_world): commands run from the manager host's namespace on the database hosts,
never through ``ip netns exec`` into them."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from floatingip.actions import perform
from floatingip.commands import NamespaceExecutor
from floatingip.errors import CommandError, CommandNotFoundError, HostUnreachableError
from floatingip.hosts import Hosts
from floatingip.results import Event
from floatingip.sandbox import Sandbox
from floatingip.service import load_services
from floatingip.ssh import SshExecutor, SshTarget
from floatingip.vocabulary import Action
from tests.conftest import require_program, require_root, wait_until
from tests.integration.conftest import printed_sudoers
from tests.integration.ssh_world import SshWorld, require_ssh
from tests.integration.test_hooks_contract import VIP, World, ok, patroni

# MHA 0.58's SSH_OPT_ALIVE (NodeConst.pm), which it puts before the configured ssh_options
MHA_SSH_DEFAULTS = (
    "-o ServerAliveInterval=60 -o ServerAliveCountMax=20 -o StrictHostKeyChecking=no "
    "-o ConnectionAttempts=5 -o PasswordAuthentication=no -o BatchMode=yes"
)


class SshHosts(World):
    """The hooks' contract world (db1, db2 with a server each, client, mgr) with sshd on db1
    and db2; the manager host reaches them only by ssh."""

    def __init__(self, sandbox: Sandbox, tmp_path: Path, ssh_directory: Path) -> None:
        super().__init__(sandbox, tmp_path)
        self.ssh = SshWorld(sandbox, ["db1", "db2"], ssh_directory, ["root"])

    def executor(self, host: str, user: str = "root") -> SshExecutor:
        """``host``'s commands over ssh from the manager host's namespace."""
        target = SshTarget(
            address=self.sandbox.addresses[host],
            user=user,
            options=tuple(self.ssh.options("root")),
        )
        return SshExecutor(host, target, inner=NamespaceExecutor(self.sandbox.namespaces["mgr"]))

    def stop_sshd(self, host: str) -> None:
        self.ssh.processes[host].kill()
        self.ssh.processes[host].wait(timeout=30)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[SshHosts]:
    require_root()
    require_program("arping", package="iputils-arping")
    require_ssh()
    # sshd reads authorized_keys as the account logging in: a directory every account can read
    ssh_directory = Path(tempfile.mkdtemp(prefix="fip-ssh-"))
    ssh_directory.chmod(0o755)
    try:
        with Sandbox(["db1", "db2", "client", "mgr"]) as sandbox:
            world = SshHosts(sandbox, tmp_path, ssh_directory)
            with world.ssh:
                yield world
    finally:
        shutil.rmtree(ssh_directory, ignore_errors=True)


HOSTILE = [
    "two words",
    "semi;colon; touch {marker}",
    "$(touch {marker})",
    "`touch {marker}`",
    "'single'",
    '"double"',
    "new\nline",
    "",
    "*",
    "~",
    "-n",
    "back\\slash",
    "$HOME",
    "a'b\"c$d",
    "tab\there",
    "> {marker}",
]


def test_hostile_words_arrive_as_one_literal_argv_word_each(
    hosts: SshHosts, tmp_path: Path
) -> None:
    marker = tmp_path / "injected"
    words = [word.format(marker=marker) for word in HOSTILE]
    result = hosts.executor("db1").run(["printf", "%s\\0", *words])
    assert result.stdout.split("\0")[:-1] == words
    assert result.argv == ("printf", "%s\\0", *words)  # the remote argv, as recorded
    assert not marker.exists()


def test_a_missing_remote_program_is_command_not_found(hosts: SshHosts) -> None:
    with pytest.raises(CommandNotFoundError, match=r"on db1 .*no-such-program-here"):
        hosts.executor("db1").run(["no-such-program-here", "x"])


def test_a_failing_remote_command_is_a_command_error_not_unreachable(hosts: SshHosts) -> None:
    result = hosts.executor("db1").run(["sh", "-c", "echo oops >&2; exit 3"], check=False)
    assert (result.exit_code, result.last_line) == (3, "oops")
    with pytest.raises(CommandError) as raised:
        hosts.executor("db1").run(["sh", "-c", "exit 3"])
    assert not isinstance(raised.value, HostUnreachableError)


def test_sudo_n_runs_on_the_remote_host_with_its_sudoers(hosts: SshHosts) -> None:
    """An account of the database host, with a NOPASSWD entry there for one command."""
    require_program("useradd", package="passwd")
    user = f"fip{uuid.uuid4().hex[:8]}"
    entry = Path("/etc/sudoers.d") / f"floatingip-test-{user}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", user], check=True)
    try:
        executor = hosts.executor("db1", user=user)
        refused = executor.run(["sudo", "-n", "id", "-u"], check=False)
        assert refused.exit_code == 1 and "password is required" in refused.stderr
        with pytest.raises(CommandError, match="NOPASSWD sudoers entry"):
            executor.run(["sudo", "-n", "id", "-u"])
        entry.write_text(f"{user} ALL=(root) NOPASSWD: /usr/bin/id -u\n")
        entry.chmod(0o440)
        assert executor.run(["sudo", "-n", "id", "-u"]).stdout.strip() == "0"
        assert executor.run(["id", "-un"]).stdout.strip() == user
    finally:
        entry.unlink(missing_ok=True)
        subprocess.run(["userdel", user], check=False)


def remote_processes(word: str) -> list[int]:
    """The processes (any namespace: they share this machine's) whose argv has ``word``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if word.encode() in argv and b"sleep" in argv[0]:
            found.append(int(pid))
    return found


def test_a_timeout_ends_the_remote_command_too(hosts: SshHosts) -> None:
    """sshd does not signal a command without a terminal when the connection drops: the
    remote timeout ends it."""
    seconds = f"{300 + uuid.uuid4().int % 1000}.5"  # a sleep no one else runs
    result = hosts.executor("db1").run(["sleep", seconds], timeout=2, check=False)
    assert result.timed_out
    assert hosts.executor("db1").unreachable(result) is not None
    assert wait_until(lambda: not remote_processes(seconds), 60), remote_processes(seconds)


LATE = {
    "sleeps past its timeout": "sleep 4.5; touch {marker}",
    "ignores SIGTERM": "trap '' TERM; sleep 3.5; touch {marker}",
}


@pytest.mark.parametrize(
    ("command", "unreachable_after"),
    [("sleeps past its timeout", 1.0), ("ignores SIGTERM", 1.0), ("ignores SIGTERM", 0.0)],
)
def test_nothing_lands_on_the_host_once_the_guard_lets_commands_through_again(
    hosts: SshHosts, tmp_path: Path, command: str, unreachable_after: float
) -> None:
    """A command that timed out over ssh may still be running on the host: until it cannot
    any more, the host counts as hung (its commands fail at once), so nothing it does lands
    after the manager lets commands through again (unreachable_after 0: the caller waits for
    the local timeout itself, no worker)."""
    marker = tmp_path / "landed"
    events: list[Event] = []
    guarded = Hosts("mgr", unreachable_after, events.append).guard({"db1": hosts.executor("db1")})
    script = LATE[command].format(marker=shlex.quote(str(marker)))
    with pytest.raises(HostUnreachableError):
        guarded["db1"].run(["sh", "-c", script], timeout=3)

    def answers() -> bool:
        try:
            return guarded["db1"].run(["true"]).ok
        except HostUnreachableError:
            return False

    assert wait_until(answers, 60)
    landed = marker.exists()
    for _ in range(40):  # 8 s: past whatever the remote command would still do
        assert marker.exists() == landed, "the command landed after the host answered again"
        time.sleep(0.2)


def test_a_root_manager_runs_the_vip_commands_with_sudo_as_a_non_root_ssh_user(
    hosts: SshHosts,
) -> None:
    """The sudo decision is the remote login's, not this (root) process's: the VIP goes up and
    down over ssh as an account that has exactly the `floatingip sudoers` lines, with sudo -n;
    and MHA (which runs its hooks as root) with --ssh_user=that account moves the VIP."""
    require_program("useradd", package="passwd")
    require_program("visudo", package="sudo")
    user = f"fip{uuid.uuid4().hex[:8]}"
    entry = Path("/etc/sudoers.d") / f"floatingip-test-{user}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", user], check=True)
    try:
        staged = entry.with_name(entry.name + ".new")  # sudo skips names containing '.'
        staged.write_text(printed_sudoers(hosts.home, user))
        staged.chmod(0o440)
        subprocess.run(["visudo", "-c", "-q", "-f", str(staged)], check=True)
        staged.rename(entry)
        service = load_services(hosts.home, "demo")["master"]
        executor = hosts.executor("db1", user=user)
        started = perform(service, Action.START, executor)
        assert started.ok, started.error
        assert started.argv[:2] == ("sudo", "-n")
        assert hosts.holders() == ["db1"]
        stopped = perform(service, Action.STOP, executor)
        assert stopped.ok, stopped.error
        assert hosts.holders() == []
        # the hooks: MHA runs them as root, with --ssh_user
        ok(patroni(hosts, "db1", "on_start", "primary"))
        assert mha(hosts, "online_stop", user).returncode == 0 and hosts.holders() == []
        started_by_mha = mha(hosts, "start", user)
        assert started_by_mha.returncode == 0, started_by_mha.stderr
        assert hosts.holders() == ["db2"]
        assert executor.runs_as_root is False and hosts.executor("db1").runs_as_root is True
    finally:
        entry.unlink(missing_ok=True)
        subprocess.run(["userdel", user], check=False)


def test_a_stopped_sshd_makes_the_host_unreachable(hosts: SshHosts) -> None:
    hosts.stop_sshd("db1")
    executor = hosts.executor("db1")
    transport = f"ssh root@{hosts.sandbox.addresses['db1']}:22"
    assert executor.transport == transport
    with pytest.raises(HostUnreachableError, match=f"through {transport}: .*refused"):
        executor.run(["true"])
    # a Manager's guard says the same, and so that the VIP may still be up there
    events: list[Event] = []
    guarded = Hosts("mgr", 30.0, events.append).guard({"db1": executor})["db1"]
    with pytest.raises(HostUnreachableError, match=f"through {transport}.*may still be up"):
        guarded.run(["true"])
    assert any("db1 is unreachable" in event.message for event in events)


# -- the hooks over ssh: the manager host reaches the database hosts with ssh ---------------


def mha(hosts: SshHosts, command: str, user: str = "root") -> subprocess.CompletedProcess[str]:
    """mha4mysql-manager 0.58's lines with ``ssh_user=root`` and ``ssh_options`` configured
    (MasterFailover.pm, MasterRotate.pm, MasterMonitor.pm, Server.pm get_ssh_args_if), db1 the
    original master, db2 the new one; the README's line with ``--ssh`` and nothing else."""
    script = hosts.floatingip("mha", "--cluster", "demo", "--ssh")
    ip = hosts.sandbox.addresses
    ssh = f" --ssh_options='{MHA_SSH_DEFAULTS} {shlex.join(hosts.ssh.options('root'))}' "
    orig = f"--orig_master_host=db1 --orig_master_ip={ip['db1']} --orig_master_port=3306"
    new = f"--new_master_host=db2 --new_master_ip={ip['db2']} --new_master_port=3306"
    lines = {
        "status": f"{script} --command=status --ssh_user=root {orig} {ssh}",
        "stopssh": f"{script} {orig} --command=stopssh --ssh_user=root  {ssh}",
        "stop": f"{script} {orig} --command=stop {ssh}",
        "start": f"{script} --command=start --ssh_user=root {orig} {new} --new_master_user='mha'"
        f" {ssh} --new_master_password='s3cret'",
        "online_stop": f"{script} --command=stop {orig} --orig_master_user='mha' {new} "
        f"--new_master_user='mha' --orig_master_ssh_user=root --new_master_ssh_user=root {ssh}"
        " --orig_master_password='s3cret' --new_master_password='s3cret'",
    }
    line = lines[command].replace("ssh_user=root", f"ssh_user={user}")
    result = hosts.on("mgr", ["/bin/sh", "-c", line])
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr
    return result


def test_mha_hook_over_ssh(hosts: SshHosts) -> None:
    ok(patroni(hosts, "db1", "on_start", "primary"))  # db1 holds the VIP to begin with
    assert mha(hosts, "status").returncode == 0
    assert mha(hosts, "online_stop").returncode == 0 and hosts.holders() == []
    assert mha(hosts, "start").returncode == 0 and hosts.holders() == ["db2"]
    assert hosts.client_reaches() == "db2"
    assert mha(hosts, "stopssh").returncode == 0  # db1: nothing held, nothing to do
    assert hosts.holders() == ["db2"]


def test_mha_stop_of_a_master_whose_sshd_is_gone_exits_10(hosts: SshHosts) -> None:
    ok(patroni(hosts, "db1", "on_start", "primary"))
    hosts.stop_sshd("db1")
    stopped = mha(hosts, "stop")
    assert stopped.returncode == 10, stopped.stderr  # MHA logs it and goes on
    # MHA passes no --ssh_user with stop: ssh's default account
    assert f"no answer through ssh {hosts.sandbox.addresses['db1']}:22 (" in stopped.stderr
    assert hosts.holders() == ["db1"]
    started = mha(hosts, "start")  # db1 still answers for the VIP: refused
    assert started.returncode == 1, started.stderr
    assert hosts.holders() == ["db1"]


def test_orchestrator_hooks_over_ssh(hosts: SshHosts, tmp_path: Path) -> None:
    """orchestrator passes host names: the account's ssh configuration maps them (here a file
    given with --ssh-config); the user, key and options come from the hook's options."""
    config = tmp_path / "orchestrator-ssh.config"
    config.write_text(
        "".join(f"Host {h}\n  HostName {hosts.sandbox.addresses[h]}\n" for h in ("db1", "db2"))
        + "Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
    )
    options = ["--ssh", "--ssh-user=root", f"--ssh-key={hosts.ssh.identity('root')}",
               f"--ssh-config={config}", "--ssh-option=ServerAliveInterval=5"]  # fmt: skip

    def orchestrator(hook: str, successor: str | None) -> int:
        configured = hosts.floatingip("orchestrator", "--cluster", "demo", *options, hook) + (
            " --failure-type '{failureType}' --failed-host '{failedHost}'"
            " --successor-host '{successorHost}' --is-successful '{isSuccessful}'"
        )
        line = configured.replace("{failureType}", "DeadMaster").replace("{failedHost}", "db1")
        line = line.replace("{isSuccessful}", "true" if successor else "false")
        if successor is not None:
            line = line.replace("{successorHost}", successor)
        result = hosts.on("mgr", ["bash", "-c", line])
        assert result.stderr.startswith("floatingip hook orchestrator:"), result.stderr
        return result.returncode

    ok(patroni(hosts, "db1", "on_start", "primary"))
    assert orchestrator("PreFailoverProcesses", None) == 0 and hosts.holders() == []
    assert orchestrator("PostMasterFailoverProcesses", "db2") == 0
    assert hosts.holders() == ["db2"]
    assert hosts.client_reaches() == "db2"
    assert VIP in hosts.sandbox.addresses_on("db2")
