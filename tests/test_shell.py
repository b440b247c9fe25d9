"""floatingip shell: scripted sessions, as an operator (or a script) would type them."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from floatingip import Manager
from floatingip.dad import PROBE_SCRIPT
from floatingip.shell import Shell
from floatingip.testing import RecordingExecutor, dry_run_responder
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
    # the duplicate-address probe opens a raw socket: through sudo unless already root
    sudo = "sudo -n " if os.geteuid() != 0 else ""
    dad = (
        f"[dry-run] {sudo}{sys.executable} -I -S {PROBE_SCRIPT} "
        "--interface eth0 --wait 0.2 10.10.12.22"
    )
    lines = result.stdout.splitlines()
    # the gratuitous ARP after the start runs in the background: its line comes at any time
    assert lines.count(f"[dry-run] {sudo}arping -U -c 3 -I eth0 10.10.12.22") == 1
    assert [line for line in lines if "arping" not in line] == [
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
    changes = [
        call[-1]
        for call in recorder.calls
        if call[-1] in ("10.10.12.22", "down") and "arping" not in call
    ]
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


class Terminal:
    """The shell on a pseudo-terminal, as an operator types at it."""

    def __init__(self, home: Path, *args: str, sigint_ignored: bool = False) -> None:
        import pty
        import signal

        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the shell on a terminal
            if sigint_ignored:  # as a shell started in the background (`cmd &`) inherits it
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            os.environ["HOME"] = str(home)
            os.environ["TERM"] = "dumb"
            os.execv(
                sys.executable,
                [sys.executable, "-m", "floatingip", "shell", "--cluster-home",
                 str(EXAMPLE_CLUSTER_HOME), "--cluster", "demo", "--dry-run", *args],
            )  # fmt: skip
        self.seen = b""
        self.cursor = 0  # what read_until has consumed
        self.closed = False

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def read_until(self, text: bytes, timeout: float = 30) -> bytes:
        """Wait for ``text``; return what came up to its end, from where the last call ended."""
        assert self.wait_for(text, timeout), f"waited for {text!r}, saw {self.seen!r}"
        start = self.cursor
        self.cursor = self.seen.index(text, start) + len(text)
        return self.seen[start : self.cursor]

    def wait_for(self, text: bytes, timeout: float) -> bool:
        import select
        import time

        deadline = time.monotonic() + timeout
        while text not in self.seen[self.cursor :]:
            if time.monotonic() > deadline:
                return False
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    self.seen += os.read(self.fd, 4096)
                except OSError:  # the shell has exited
                    return text in self.seen[self.cursor :]
        return True

    def interrupt(self) -> None:
        """Ctrl-C, repeated until it shows, as an operator would: a SIGINT that lands just
        before CPython's readline waits for the next key is seen only at the next key."""
        for _ in range(30):
            self.type(b"\x03")
            if self.wait_for(b"^C", timeout=2):
                return
        raise AssertionError(f"Ctrl-C never showed, saw {self.seen!r}")

    def close(self, *, kill: bool = False, timeout: float = 60) -> int:
        """Wait for the shell to exit and return its status; kill it when the test failed or
        when it does not exit (then the status is -9, and the test fails)."""
        import time

        deadline = time.monotonic() + timeout
        while not kill:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            kill = time.monotonic() > deadline
            time.sleep(0.05)
        if kill:
            os.kill(self.pid, 9)
            _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        self.closed = True
        return os.waitstatus_to_exitcode(status)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is not None and not self.closed:
            self.close(kill=True)


def test_interactive_completion_and_history(tmp_path: Path) -> None:
    """On a terminal: tab completes commands and names, and the history is saved as typed."""
    with Terminal(tmp_path, "--host", "db1") as terminal:
        terminal.read_until(PROMPT.encode())
        terminal.type(b"datas\t")
        terminal.read_until(b"datasource ")
        terminal.type(b"d\t1 onl\t\r")  # d<tab> completes to db (db1, db2)
        terminal.read_until(b"DataSource 'db1' is now ONLINE")
        terminal.type(b"serv\tm\tstat\t")
        terminal.read_until(b"service master status ")
        terminal.type(b"o\t")  # service ... on <host>
        terminal.read_until(b"on ")
        terminal.type(b"d\t\r")
        terminal.read_until(b"service 'master' status on db1: OK")
        terminal.read_until(PROMPT.encode())
        terminal.type(b"exit\r")
        terminal.read_until(b"manager stopped")
        assert terminal.close() == 0
    history = (tmp_path / ".floatingip_history").read_text().splitlines()
    assert history[-3:] == ["datasource db1 online", "service master status on db1", "exit"]


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["sigint-default", "sigint-ignored"])
def test_interactive_banner_help_and_ctrl_c(tmp_path: Path, sigint_ignored: bool) -> None:
    """A banner says how to get help; help lists the commands only; Ctrl-C cancels the line,
    even when the shell was started with SIGINT ignored (as a background job inherits it)."""
    with Terminal(tmp_path, "--host", "db1", sigint_ignored=sigint_ignored) as terminal:
        banner = terminal.read_until(PROMPT.encode())
        assert b"Type 'help' for the commands" in banner
        terminal.type(b"help\r")
        shown = terminal.read_until(PROMPT.encode())
        assert b"datasource" in shown and b"switch" in shown
        assert b"EOF" not in shown and b"Undocumented" not in shown
        terminal.type(b"datasource db1 onl")
        terminal.read_until(b"onl")
        terminal.interrupt()  # Ctrl-C: the line is dropped, the shell stays
        cancelled = terminal.read_until(PROMPT.encode())
        assert b"Traceback" not in cancelled and b"KeyboardInterrupt" not in cancelled
        terminal.type(b"ls\r")
        listed = terminal.read_until(PROMPT.encode())
        assert b"db1   master  OFFLINE" in listed  # the cancelled line did not run
        terminal.type(b"\x04")  # Ctrl-D leaves
        assert terminal.close() == 0


def test_a_shell_on_a_host_without_datasources_says_so() -> None:
    """The host defaults to the machine's name: say at once that nothing will run here."""
    result = run_shell("datasource db1 online\nls\n", "--dry-run", "--host", "vm")
    warning = (
        "WARNING: no datasource of cluster demo is on host 'vm'; commands for other hosts "
        "are not run here; use --host (db1, db2)"
    )
    lines = result.stdout.splitlines()
    assert lines[0] == warning
    assert lines[1:4] == [
        f"{PROMPT}datasource db1 online",
        "DataSource 'db1' is now ONLINE",
        "WARNING: datasource db1 is on host 'db1', not on 'vm': commands for other hosts "
        "are not run here; use --host db1",
    ]
    assert not any(line.startswith("[dry-run]") for line in lines)
    assert result.returncode == 0


@pytest.mark.parametrize("bad", ["-1", "nan", "inf", "100000"])
def test_unreachable_after_is_validated_before_anything_runs(bad: str) -> None:
    result = run_shell("ls\n", "--dry-run", f"--unreachable-after={bad}")
    assert result.returncode == 1
    assert "--unreachable-after must be 0 (off) or between" in result.stderr
    assert f"not {float(bad)!r}" in result.stderr and result.stdout == ""  # no manager built


def test_unreachable_after_is_refused_with_etcd() -> None:
    result = run_shell("ls\n", "--unreachable-after", "2", "--etcd", "http://192.0.2.1:2379")
    assert result.returncode == 1
    assert "--unreachable-after" in result.stderr and "the agents run them" in result.stderr
