"""floatingip.commands: real processes, real timeouts, real namespaces."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from floatingip import (
    CommandError,
    CommandResult,
    Executor,
    FloatingIPError,
    LocalExecutor,
    Manager,
    NamespaceExecutor,
)
from floatingip.commands import OUTPUT_TAIL, command_argv, find_program, shell_syntax
from floatingip.errors import CommandNotFoundError, CommandStartError, CommandTimeout
from floatingip.testing import RecordingExecutor
from tests.conftest import (
    PATIENCE,
    report,
    require_program,
    require_root,
    wait_until,
    write_service,
)


def process_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (a zombie has exited; only its entry is left)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def sleep_marker() -> str:
    """A unique argument for `sleep`, to find its processes by: over 1000 s, far longer than
    any deadline here, so a command that was not killed cannot pass for one that was."""
    return f"{1000 + uuid.uuid4().int % 10**6}.{uuid.uuid4().int % 1000:03d}"


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline and process_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_executors_satisfy_the_protocol() -> None:
    assert isinstance(LocalExecutor(), Executor)
    assert isinstance(RecordingExecutor(), Executor)
    assert isinstance(NamespaceExecutor("ns1"), Executor)


def test_exit_code_and_output_are_captured() -> None:
    result = LocalExecutor().run(
        ["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=PATIENCE, check=False
    )
    assert result.argv == ("sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not result.ok and not result.timed_out
    assert result.duration >= 0


def test_success_returns_the_result() -> None:
    result = LocalExecutor().run(["echo", "hello", "world; rm -rf /"], timeout=5)
    assert result.ok
    assert result.stdout == "hello world; rm -rf /\n"


def test_failure_raises_command_error_with_argv_exit_code_and_output() -> None:
    with pytest.raises(CommandError) as caught:
        LocalExecutor().run(["sh", "-c", "echo why >&2; exit 4"], timeout=5)
    error = caught.value
    assert isinstance(error, FloatingIPError)
    assert (error.argv, error.exit_code, error.stderr) == (
        ("sh", "-c", "echo why >&2; exit 4"),
        4,
        "why\n",
    )
    assert "exited with status 4" in str(error) and "why" in str(error)


def test_missing_binary_is_command_not_found() -> None:
    with pytest.raises(CommandNotFoundError, match="command not found: 'no-such-program-xyz'"):
        LocalExecutor().run(["no-such-program-xyz", "arg"], timeout=5, check=False)


def test_the_program_is_found_on_path_as_shutil_which_finds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # commands.find_program replaces shutil.which (which imports zlib, bz2, lzma): same answers
    plain, folder, runnable, other = (tmp_path / name for name in ("plain", "dir", "run", "other"))
    for directory in (plain, folder, runnable, other):
        directory.mkdir()
    (plain / "prog").write_text("#!/bin/sh\necho plain\n")  # not executable
    (folder / "prog").mkdir()  # a directory, even an executable one, is no program
    executable(runnable / "prog", b"#!/bin/sh\necho runnable\n")
    executable(other / "prog", b"#!/bin/sh\necho other\n")
    monkeypatch.chdir(other)
    path = os.pathsep.join(map(str, (plain, folder, runnable, other)))
    result = LocalExecutor(env={"PATH": path}).run(["prog"], timeout=5)
    assert result.stdout == "runnable\n"
    cases = [
        ("prog", path),
        ("prog", os.pathsep.join(map(str, (plain, folder)))),
        ("prog", ""),  # an empty PATH finds nothing, not the current directory
        ("prog", os.pathsep),  # an empty entry is the current directory
        ("./prog", path),
        (str(plain / "prog"), path),
        (str(folder / "prog"), path),
        ("sh", None),
        ("no-such-program-xyz", None),
    ]
    for name, search in cases:
        assert find_program(name, search) == shutil.which(name, path=search), (name, search)


def test_environment_is_inherited_and_extendable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOATINGIP_TEST_VAR", "inherited")
    result = LocalExecutor(env={"EXTRA": "added"}).run(
        ["sh", "-c", 'echo "$FLOATINGIP_TEST_VAR $EXTRA"'], timeout=5
    )
    assert result.stdout == "inherited added\n"
    assert LocalExecutor().run(["printenv", "PATH"], timeout=5).stdout.strip() == os.environ["PATH"]


def test_stdin_is_empty_not_inherited() -> None:
    result = LocalExecutor().run(["cat"], timeout=5)
    assert result.stdout == ""


def test_timeout_kills_the_command_and_its_children(tmp_path: Path) -> None:
    marker = sleep_marker()
    pidfile = tmp_path / "child.pid"
    script = f"sleep {marker} & echo $! > {pidfile}; sleep {marker}"
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as caught:
        LocalExecutor().run(["sh", "-c", script], timeout=0.5)
    result = caught.value.result
    assert result is not None and result.timed_out
    assert "timed out" in str(caught.value)
    assert time.monotonic() - started < PATIENCE  # returned at the timeout, not at the end
    child = int(pidfile.read_text())
    assert wait_until(lambda: not process_alive(child)), "the forked child survived the timeout"
    assert wait_until(lambda: processes_with(marker) == [])


def test_a_command_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    marker = sleep_marker()
    started = time.monotonic()
    result = LocalExecutor(kill_grace=0.3).run(
        ["sh", "-c", f"trap '' TERM; sleep {marker}"], timeout=0.3, check=False
    )
    assert result.timed_out and result.exit_code == -9
    assert time.monotonic() - started < PATIENCE
    assert wait_until(lambda: processes_with(marker) == [])


@pytest.mark.parametrize(
    ("line", "argv"),
    [
        (
            "sudo /sbin/ifconfig eth0:0 10.10.12.22",
            ["sudo", "-n", "/sbin/ifconfig", "eth0:0", "10.10.12.22"],
        ),
        ("sudo -n ip addr", ["sudo", "-n", "ip", "addr"]),
        ("/usr/bin/sudo -u root ip", ["/usr/bin/sudo", "-n", "-u", "root", "ip"]),
        ("sudo --non-interactive ip", ["sudo", "--non-interactive", "ip"]),
        ("echo sudo", ["echo", "sudo"]),
        ('echo "Not supported"', ["echo", "Not supported"]),
    ],
)
def test_command_argv_splits_without_a_shell_and_adds_sudo_n(line: str, argv: list[str]) -> None:
    assert command_argv(line) == tuple(argv)


def test_command_argv_refuses_unsplittable_and_empty() -> None:
    with pytest.raises(ValueError, match="No closing quotation"):
        command_argv("echo 'open")
    with pytest.raises(ValueError, match="empty command"):
        command_argv("   ")


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ("a; b", ["';' operator"]),
        ("a && b || c", ["'&&' operator", "'||' operator"]),
        ("a > f", ["'>' operator"]),
        ("echo $(reboot)", ["$(...) command substitution"]),
        ('echo "$HOME"', ["$ variable expansion"]),
        ("echo `id`", ["`...` command substitution"]),
        ("echo '$HOME; `x` && y'", []),
        ('echo "a;b"', []),
        ("echo a\\;b", []),
        ("echo 5$", []),
    ],
)
def test_shell_syntax_finds_unquoted_constructs(line: str, found: list[str]) -> None:
    assert shell_syntax(line) == found


def test_sudo_n_fails_fast_for_a_user_without_sudoers_entry_is_explained() -> None:
    result = CommandResult(
        argv=("sudo", "-n", "ip"), exit_code=1, stderr="sudo: a password is required\n"
    )
    with pytest.raises(CommandError, match="NOPASSWD sudoers entry"):
        result.check()


def test_namespace_name_is_validated() -> None:
    for bad in ["", "a/b", "..", "x y", "a" * 65]:
        with pytest.raises(ValueError, match="invalid network namespace name"):
            NamespaceExecutor(bad)


def test_namespace_executor_reports_missing_program_before_running() -> None:
    recorder = RecordingExecutor()
    with pytest.raises(CommandNotFoundError):
        NamespaceExecutor("ns1", inner=recorder).run(["no-such-program-xyz"])
    assert recorder.calls == []
    NamespaceExecutor("ns1", inner=recorder).run(["ip", "addr"])
    assert recorder.calls == [("ip", "netns", "exec", "ns1", "ip", "addr")]


@pytest.fixture
def netns() -> object:
    require_root()
    require_program("ip", package="iproute2")
    name = f"fiptest-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def test_namespace_executor_runs_inside_the_namespace(netns: str) -> None:
    executor = NamespaceExecutor(netns)
    inside = executor.run(["ip", "-o", "link", "show"], timeout=5).stdout
    assert [line.split(":")[1].strip() for line in inside.splitlines()] == ["lo"]
    executor.run(["ip", "link", "add", "fipv0", "type", "veth", "peer", "name", "fipv1"], timeout=5)
    assert "fipv0" in executor.run(["ip", "-o", "link"], timeout=5).stdout
    outside = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "fipv0" not in outside
    failed = executor.run(["ip", "link", "del", "nonexistent0"], timeout=5, check=False)
    assert failed.exit_code != 0 and "nonexistent0" in failed.stderr


# -- a command that cannot be executed (issue 11, item 5) --------------------------------------


def executable(path: Path, text: bytes) -> Path:
    path.write_bytes(text)
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        (b"#!/bin/sh\r\necho hello\r\n", "carriage return"),
        (b"#!/no/such/interpreter\necho hello\n", "'/no/such/interpreter' does not exist"),
    ],
)
def test_a_program_that_cannot_be_executed_is_a_command_start_error(
    tmp_path: Path, script: bytes, reason: str
) -> None:
    program = executable(tmp_path / "broken", script)
    for check in (True, False):
        with pytest.raises(CommandStartError) as caught:
            LocalExecutor().run([str(program), "arg"], timeout=5, check=check)
        error = caught.value
        assert isinstance(error, CommandError)
        assert error.argv == (str(program), "arg")
        assert reason in error.reason and reason in str(error)
        assert f"cannot execute {str(program)!r}" in str(error)


def test_a_command_that_cannot_be_executed_is_recorded_like_any_failure(
    cluster_home: Path, service_dir: Path
) -> None:
    program = executable(cluster_home / "take-vip", b"#!/bin/sh\r\nexit 0\r\n")
    write_service(
        service_dir,
        "master.properties",
        f"name=master\ncommand.start={program}\ncommand.stop=true\n",
    )
    datasources = service_dir.parent / "datasource"
    datasources.mkdir(mode=0o755)
    write_service(datasources, "db1.properties", "name=db1\nrole=master\n")
    with Manager.from_cluster_home(cluster_home, "demo", host="db1", monitor_interval=0) as manager:
        result = manager.update_datasource("db1", state="ONLINE")
        assert not result.ok
        assert any("carriage return" in error for error in result.errors), result.errors
        failed = [event for event in manager.history if event.kind == "command" and not event.ok]
        assert failed and failed[-1].outcome is not None
        assert isinstance(failed[-1].outcome.error, CommandStartError)
        assert manager.held == {}


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_exec_failures_leak_no_file_descriptors(tmp_path: Path) -> None:
    program = executable(tmp_path / "broken", b"#!/bin/sh\r\necho hello\r\n")
    executor = LocalExecutor()
    with pytest.raises(CommandStartError):
        executor.run([str(program)], timeout=5)  # whatever is created once, up front
    before = open_descriptors()
    for _ in range(1000):
        with pytest.raises(CommandStartError):
            executor.run([str(program)], timeout=5)
    assert open_descriptors() == before


# -- output is kept as a bounded tail (issue 11, item 6) ---------------------------------------


def test_only_the_tail_of_a_long_output_is_kept() -> None:
    result = LocalExecutor().run(
        ["sh", "-c", "seq 1 1000000; seq 1 1000000 >&2; echo done"], timeout=30
    )
    for stream, end in ((result.stdout, "1000000\ndone\n"), (result.stderr, "999999\n1000000\n")):
        assert stream.endswith(end)
        assert len(stream.encode()) <= OUTPUT_TAIL + 100
        first, rest = stream.split("\n", 1)
        assert first.endswith("earlier bytes not kept]")  # says that it is a tail
        lines = rest.splitlines()  # whole lines: the first follows on from the marker
        assert lines[:3] == [str(n) for n in range(int(lines[0]), int(lines[0]) + 3)]
    short = LocalExecutor().run(["seq", "1", "3"], timeout=5)
    assert short.stdout == "1\n2\n3\n"  # a short output is kept whole, nothing added


_NOISY_MANAGER = """
import json, sys
from floatingip import Manager

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

limit = int(sys.argv[2])
with Manager.from_cluster_home(
    sys.argv[1], "demo", host="db1", monitor_interval=0, history_size=3000  # keeps all 1,000
) as manager:
    commands, base = 0, None
    while commands < 1000:
        for state in ("ONLINE", "OFFLINE"):
            result = manager.update_datasource("db1", state=state)
            assert result.ok, result.errors
            commands += 1
        if commands == 20:
            base = rss()
        if base is not None and rss() - base > limit:
            break  # unbounded: stop before the machine runs out of memory
    kept = [e.outcome.result for e in manager.history if e.outcome and e.outcome.result]
    print(json.dumps({"commands": commands, "growth": rss() - base, "kept": len(kept),
                      "tail": kept[-1].stdout[-20:]}))
"""


def test_memory_stays_bounded_over_a_thousand_noisy_commands(
    cluster_home: Path, service_dir: Path
) -> None:
    """1,000 commands printing 5 MB each, every result kept in the manager's history."""
    noisy = "sh -c 'head -c 5000000 /dev/zero; echo end-of-output'"
    write_service(
        service_dir,
        "master.properties",
        f"name=master\ncommand.start={noisy}\ncommand.stop={noisy}\ncommand.timeout=60\n",
    )
    datasources = service_dir.parent / "datasource"
    datasources.mkdir(mode=0o755)
    write_service(datasources, "db1.properties", "name=db1\nrole=master\n")
    limit = 50 * 2**20
    child = subprocess.run(
        [sys.executable, "-c", _NOISY_MANAGER, str(cluster_home), str(limit)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert child.returncode == 0, child.stderr
    outcome = json.loads(child.stdout)
    report(f"1,000 commands printing 5 MB each: RSS grew {outcome['growth'] / 2**20:.1f} MB")
    assert outcome["commands"] == 1000, f"RSS grew over {limit} bytes: {outcome}"
    assert outcome["growth"] < limit
    assert outcome["kept"] >= 1000 and outcome["tail"].endswith("end-of-output\n")


# -- a command that exits but leaves a child holding its output (issue 11, item 12) ------------


@pytest.mark.parametrize("status", [0, 3])
def test_a_command_that_exits_leaving_a_child_reports_its_exit_code(status: int) -> None:
    marker = f"{uuid.uuid4().int % 10**6}.{status}21"
    result = LocalExecutor().run(
        ["sh", "-c", f"sleep {marker} & echo started; exit {status}"], timeout=1, check=False
    )
    assert (result.exit_code, result.timed_out, result.stdout) == (status, False, "started\n")
    assert result.ok == (status == 0)
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert processes_with(marker) == [], "what the command left behind was not killed"


def test_what_a_command_leaves_behind_is_killed_even_without_holding_its_output() -> None:
    marker = f"{uuid.uuid4().int % 10**6}.654"
    result = LocalExecutor().run(
        ["sh", "-c", f"sleep {marker} >/dev/null 2>&1 &"], timeout=5, check=False
    )
    assert result.ok
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert processes_with(marker) == []


def test_an_exit_status_nobody_saw_is_not_reported_as_success() -> None:
    """With SIGCHLD ignored the kernel discards exit statuses: say so, never claim success."""
    script = (
        "import signal; signal.signal(signal.SIGCHLD, signal.SIG_IGN)\n"
        "from floatingip import LocalExecutor\n"
        "result = LocalExecutor().run(['sh', '-c', 'echo hi; exit 3'], check=False)\n"
        "print(result.exit_code, result.ok, repr(result.stdout))\n"
        "result.check()\n"
    )
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert child.stdout == "None False 'hi\\n'\n"
    assert "CommandError: command exited with an unknown status: sh -c" in child.stderr
