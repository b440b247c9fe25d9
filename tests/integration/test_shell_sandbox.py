"""The shell in the sandbox moves a real VIP between real hosts; the demo shows it."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from floatingip import Manager
from floatingip.sandbox import Sandbox
from floatingip.shell import Shell
from tests.conftest import EXAMPLE_CLUSTER_HOME, REPO, require_program, require_root
from tests.integration.conftest import sandbox_namespaces

VIP = "192.0.2.22"
PORT = 3306


def seed_home(tmp_path: Path) -> Path:
    """The example cluster-home (the seed's ifconfig commands), VIP on TEST-NET-1."""
    home = tmp_path / "cluster-home"
    for source in EXAMPLE_CLUSTER_HOME.rglob("*"):
        target = home / source.relative_to(EXAMPLE_CLUSTER_HOME)
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(source.read_text().replace("10.10.12.22", VIP))
    for path in [home, *home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return home


def holders(sandbox: Sandbox) -> list[str]:
    return [host for host in ("db1", "db2") if VIP in sandbox.addresses_on(host)]


def client_reaches(sandbox: Sandbox, timeout: float = 10) -> str | None:
    # classic ifconfig services send no gratuitous ARP: the client re-resolves the VIP
    sandbox.run("client", ["ip", "neigh", "flush", "dev", "eth0"])
    return sandbox.ask("client", VIP, PORT, timeout=timeout)


def test_shell_moves_the_vip_with_the_seed_commands(sandbox: Sandbox, tmp_path: Path) -> None:
    require_program("sudo", package="sudo")
    require_program("/sbin/ifconfig", package="net-tools")
    for host in ("db1", "db2"):
        sandbox.start_server(host, PORT)
    out = io.StringIO()
    executors = {host: sandbox.executor(host) for host in ("db1", "db2")}
    with Manager.from_cluster_home(seed_home(tmp_path), "demo", executors=executors) as manager:
        shell = Shell(manager, stdout=out)
        shell.run_script(["datasource db2 online", "datasource db1 online"])
        assert holders(sandbox) == ["db1"]
        ifconfig = sandbox.run("db1", ["/sbin/ifconfig", "eth0:0"]).stdout
        assert f"inet {VIP}" in ifconfig
        assert client_reaches(sandbox) == "db1"

        shell.run_script(["datasource db1 offline"])
        assert holders(sandbox) == []
        assert "inet " not in sandbox.run("db1", ["/sbin/ifconfig", "eth0:0"], check=False).stdout
        assert client_reaches(sandbox, timeout=1.5) is None  # nobody answers ARP for the VIP

        shell.run_script(["switch to db2"])
        assert holders(sandbox) == ["db2"]
        assert client_reaches(sandbox) == "db2"
        assert shell.failures == 0, out.getvalue()
    assert holders(sandbox) == []  # the failsafe released it on close
    text = out.getvalue()
    assert "DataSource 'db1' is now ONLINE" in text and "SWITCH TO 'db2' WAS SUCCESSFUL" in text


def test_the_shell_command_runs_real_commands_in_namespaces(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    require_program("sudo", package="sudo")
    require_program("/sbin/ifconfig", package="net-tools")
    result = subprocess.run(
        [
            sys.executable, "-m", "floatingip", "shell",
            "--cluster-home", str(seed_home(tmp_path)), "--cluster", "demo",
            "--netns", f"db1={sandbox.namespaces['db1']}",
            "--netns", f"db2={sandbox.namespaces['db2']}",
        ],
        input="datasource db1 online\nls\nservice master status on db1\n",
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "  master: held on db1 (for db1)" in result.stdout
    assert f"inet {VIP}" in result.stdout  # service master status ran ifconfig eth0:0 on db1
    assert f"{VIP} is held" in result.stdout
    assert "manager stopped: released master on db1" in result.stdout
    assert holders(sandbox) == []


def test_make_demo_shows_the_three_steps_and_leaves_nothing_behind() -> None:
    require_root()
    require_program("sudo", package="sudo")
    require_program("/sbin/ifconfig", package="net-tools")
    demo = subprocess.Popen(
        [sys.executable, str(REPO / "examples" / "demo.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = demo.communicate(timeout=120)
    assert demo.returncode == 0, out + err
    assert f"inet {VIP}" in out
    order = [
        "DataSource 'db1' is now ONLINE",
        f"client$ connect {VIP}:3306  ->  answered by db1",
        "DataSource 'db1' is now OFFLINE",
        f"client$ connect {VIP}:3306  ->  no answer",
        "SWITCH TO 'db2' WAS SUCCESSFUL",
        f"client$ connect {VIP}:3306  ->  answered by db2",
        "released master on db2",
    ]
    positions = [out.find(text) for text in order]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), out
    assert sandbox_namespaces(demo.pid) == set()
