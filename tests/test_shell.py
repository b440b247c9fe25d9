"""floatingip shell: scripted sessions, as an operator (or a script) would type them."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from floatingip import Manager, RecordingExecutor
from floatingip.dad import PROBE_SCRIPT
from floatingip.shell import Shell, dry_run_responder
from tests.conftest import EXAMPLE_CLUSTER_HOME

PROMPT = "[LOGICAL] /cluster/demo/> "


def run_shell(
    stdin: str, *args: str, home: Path = EXAMPLE_CLUSTER_HOME
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "floatingip",
            "shell",
            "--cluster-home",
            str(home),
            "--cluster",
            "demo",
            *args,
        ],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": "/nonexistent"},
    )


@pytest.fixture(autouse=True)
def safe_example_modes() -> None:
    # git checkouts under a umask of 002 make the example group-writable, which floatingip refuses
    for path in [EXAMPLE_CLUSTER_HOME, *EXAMPLE_CLUSTER_HOME.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o022)


def test_online_offline_transcript_with_dry_run() -> None:
    result = run_shell(
        "datasource db1 online\ndatasource db1 offline\n", "--dry-run", "--host", "db1"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    dad = f"[dry-run] {sys.executable} -I -S {PROBE_SCRIPT} --interface eth0 --wait 0.2 10.10.12.22"
    assert result.stdout.splitlines() == [
        f"{PROMPT}datasource db1 online",
        dad,  # db2 runs on a host this shell cannot see: nobody else may answer for the VIP
        "[dry-run] sudo -n /sbin/ifconfig eth0:0 10.10.12.22",
        "DataSource 'db1' is now ONLINE",
        f"{PROMPT}datasource db1 offline",
        "[dry-run] sudo -n /sbin/ifconfig eth0:0 down",
        "[dry-run] sudo -n /sbin/ifconfig eth0:0",  # the status that confirms it is gone
        "DataSource 'db1' is now OFFLINE",
    ]


def test_the_seed_session_word_for_word(tmp_path: Path) -> None:
    """The seed's transcript, with its host centos5a, reproduced exactly."""
    home = tmp_path / "cluster-home"
    service_dir = home / "conf/cluster/demo/service"
    service_dir.mkdir(parents=True)
    (service_dir / "master.properties").write_bytes(
        (EXAMPLE_CLUSTER_HOME / "conf/cluster/demo/service/master.properties").read_bytes()
    )
    datasource_dir = home / "conf/cluster/demo/datasource"
    datasource_dir.mkdir()
    (datasource_dir / "centos5a.properties").write_text("name=centos5a\nrole=master\n")
    for path in [home, *home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    result = run_shell(
        "datasource centos5a online\ndatasource centos5a offline\n",
        "--dry-run",
        "--host",
        "centos5a",
        home=home,
    )
    lines = [line for line in result.stdout.splitlines() if not line.startswith("[dry-run]")]
    assert lines == [
        f"{PROMPT}datasource centos5a online",
        "DataSource 'centos5a' is now ONLINE",
        f"{PROMPT}datasource centos5a offline",
        "DataSource 'centos5a' is now OFFLINE",
    ]
    assert result.returncode == 0


def test_errors_are_printed_and_the_shell_goes_on_then_exits_non_zero() -> None:
    result = run_shell(
        "datasource db9 online\nfrobnicate\ndatasource db1 sideways\nset policy sometimes\n"
        "datasource db1 online\n",
        "--dry-run",
        "--host",
        "db1",
    )
    out = result.stdout
    assert "ERROR: unknown datasource 'db9' in cluster 'demo' (known: db1, db2)" in out
    assert "ERROR: unknown command 'frobnicate'; type 'help' for the commands" in out
    assert (
        "ERROR: usage: datasource <name> online|offline|fail|shun|recover|welcome|slave|master"
        in out
    )
    assert "ERROR: unknown policy mode 'sometimes'" in out
    assert "DataSource 'db1' is now ONLINE" in out  # the last command still ran
    assert result.returncode == 1


def test_a_failing_command_is_shown_and_counted(tmp_path: Path) -> None:
    def respond(argv: tuple[str, ...]) -> object:
        from floatingip import CommandResult

        if argv[-1] != "10.10.12.22" or PROBE_SCRIPT in argv:  # only the start fails
            return CommandResult(argv, 0)
        return CommandResult(argv, 1, stderr="sudo: a password is required\n")

    out = io.StringIO()
    with Manager.from_cluster_home(
        EXAMPLE_CLUSTER_HOME,
        "demo",
        host="db1",
        executor=RecordingExecutor(respond),  # type: ignore[arg-type]
    ) as manager:
        shell = Shell(manager, stdout=out)
        shell.run_script(["datasource db1 online"])
    text = out.getvalue()
    assert "DataSource 'db1' is now ONLINE" in text
    assert "ERROR: master start on db1: command exited with status 1" in text
    assert "a password is required" in text and "floatingip sudoers" in text
    assert shell.failures == 1


def test_switch_shun_welcome_fail_recover_and_ls() -> None:
    out = io.StringIO()
    recorder = RecordingExecutor(dry_run_responder(out))
    with Manager.from_cluster_home(
        EXAMPLE_CLUSTER_HOME, "demo", host="db1", executor=recorder, executors={"db2": recorder}
    ) as manager:
        shell = Shell(manager, stdout=out)
        shell.run_script(
            [
                "datasource db1 online",
                "datasource db2 online",
                "switch to db2",
                "ls",
                "datasource db1 shun",
                "datasource db1 welcome",
                "datasource db2 fail",
                "datasource db2 recover",
                "switch",
                "set policy maintenance",
                "switch to db9",
            ]
        )
    text = out.getvalue()
    assert "SELECTED SLAVE: 'db2'" in text
    assert "SWITCH TO 'db2' WAS SUCCESSFUL" in text
    assert "  db2   db2   master  ONLINE  master" in text
    assert "  master: held on db2 (for db2)" in text
    assert "DataSource 'db1' set to SHUNNED" in text
    assert "DataSource 'db1' is now ONLINE" in text
    assert "DataSource 'db2' set to FAILED" in text
    assert "DataSource 'db2' is now ONLINE" in text
    assert "SWITCH TO 'db1' WAS SUCCESSFUL" in text
    assert "policy mode is now MAINTENANCE" in text
    assert "ERROR: unknown datasource 'db9'" in text
    assert shell.failures == 1
    # db1 takes the VIP; switch: db2; db2 fails, recovers; switch: db1; closed in MAINTENANCE,
    # so the failsafe leaves the VIP where it is
    changes = [call[-1] for call in recorder.calls if call[-1] in ("10.10.12.22", "down")]
    assert changes == ["10.10.12.22", "down"] * 3 + ["10.10.12.22"]


def test_service_command_prints_its_output() -> None:
    result = run_shell("service master restart\nservice master status on db7\n", "--host", "db1")
    assert "Not supported" in result.stdout
    assert "service 'master' restart on db1: OK" in result.stdout
    assert "ERROR: unknown host 'db7'" in result.stdout


def test_netns_option_is_validated() -> None:
    result = run_shell("ls\n", "--dry-run", "--netns", "db1")
    assert result.returncode == 1
    assert "--netns takes HOST=NAMESPACE" in result.stderr


def test_interactive_completion_and_history(tmp_path: Path) -> None:
    """On a terminal: tab completes commands and names, and the history is saved."""
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: the shell on a terminal
        os.environ["HOME"] = str(tmp_path)
        os.environ["TERM"] = "dumb"
        os.execv(
            sys.executable,
            [sys.executable, "-m", "floatingip", "shell", "--cluster-home",
             str(EXAMPLE_CLUSTER_HOME), "--cluster", "demo", "--host", "db1", "--dry-run"],
        )  # fmt: skip

    seen = b""

    def read_until(text: bytes, timeout: float = 15) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while text not in seen:
            assert time.monotonic() < deadline, f"waited for {text!r}, saw {seen!r}"
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(fd, 4096)
                except OSError:
                    break

    try:
        read_until(PROMPT.encode())
        os.write(fd, b"datas\t")
        read_until(b"datasource ")
        os.write(fd, b"d\t1 onl\t\r")  # d<tab> completes to db (db1, db2)
        read_until(b"DataSource 'db1' is now ONLINE")
        os.write(fd, b"exit\r")
        read_until(b"manager stopped")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    history = (tmp_path / ".floatingip_history").read_text().splitlines()
    assert [line.rstrip() for line in history[-2:]] == ["datasource db1 online", "exit"]
