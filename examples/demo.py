"""The seed procedure end to end, in a throwaway network: `make demo`.

Two database hosts (db1 master, db2 slave), each running a small server that listens on all
addresses and answers with its host name, and a client, all in network namespaces on TEST-NET-1.
The cctrl-like shell turns db1 online (the VIP comes up on db1 and the client reaches db1 through
it), offline (the VIP is gone, the client gets no answer), then switches to db2 (the VIP is on db2
and the client reaches db2).  After each shell command it shows what the manager ran, and on which
host.  Without root it runs the same session with --dry-run and says why.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from floatingip import CommandOutcome, Event, Manager
from floatingip.sandbox import Sandbox, SandboxError
from floatingip.shell import Shell
from floatingip.testing import RecordingExecutor, dry_run_responder

EXAMPLE_HOME = Path(__file__).resolve().parent / "cluster-home"
SEED_VIP = "10.10.12.22"  # the seed's address: documentation only, never used on a network
DEMO_VIP = "192.0.2.22"  # TEST-NET-1, inside the sandbox
PORT = 3306
# Which addresses eth0 holds.  (`ifconfig eth0:0` is no proof that the VIP is gone: for a removed
# alias it still prints a line with eth0's flags, UP among them.)
ADDRESSES = ("ip", "-4", "address", "show", "dev", "eth0")
SESSION = ["datasource db2 online", "datasource db1 online"]


def cluster_home(directory: Path) -> Path:
    """The example cluster-home, with the seed's VIP replaced by a TEST-NET address."""
    home = directory / "cluster-home"
    shutil.copytree(EXAMPLE_HOME, home)
    service = home / "conf/cluster/demo/service/master.properties"
    service.write_text(service.read_text().replace(SEED_VIP, DEMO_VIP))
    for path in [home, *home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return home


def missing_programs() -> list[str]:
    wanted = {"sudo": "sudo", "/sbin/ifconfig": "net-tools", "ip": "iproute2"}
    return [package for program, package in wanted.items() if shutil.which(program) is None]


def ran(outcome: CommandOutcome) -> str:
    status = "ok" if outcome.ok else f"FAILED: {outcome.error}"
    return f"#   the manager ran on {outcome.host}: {shlex.join(outcome.argv)}  ({status})"


class Demo:
    def __init__(self, sandbox: Sandbox, shell: Shell) -> None:
        self.sandbox = sandbox
        self.shell = shell
        self.commands: list[CommandOutcome] = []
        shell.manager.add_listener(self.collect)

    def collect(self, event: Event) -> None:
        if event.kind == "command" and event.outcome is not None:
            self.commands.append(event.outcome)

    def say(self, text: str = "") -> None:
        print(text, flush=True)

    def cctrl(self, line: str) -> None:
        self.say(f"{self.shell.prompt}{line}")
        self.commands.clear()
        self.shell.onecmd(line)
        for outcome in self.commands:
            self.say(ran(outcome))

    def on(self, host: str, *argv: str, grep: str | None = None) -> None:
        shown = f"{shlex.join(argv)} | grep {grep}" if grep is not None else shlex.join(argv)
        self.say(f"{host}$ {shown}")
        result = self.sandbox.run(host, argv, check=False)
        for line in (result.stdout + result.stderr).splitlines():
            if grep is None or grep in line:
                self.say(f"    {line.strip()}")

    def client(self) -> None:
        # The seed's ifconfig commands send no gratuitous ARP: the client forgets the VIP's old
        # MAC address first, as it would once its ARP cache entry expires.
        self.sandbox.run("client", ["ip", "neigh", "flush", "dev", "eth0"], check=False)
        answer, error = self.sandbox.connect("client", DEMO_VIP, PORT, timeout=1.5)
        reply = f"answered by {answer}" if answer else f"no answer ({error})"
        self.say(f"client$ connect {DEMO_VIP}:{PORT}  ->  {reply}")

    def run(self) -> None:
        self.say(f"# Step 4 of the seed: the master datasource goes ONLINE (VIP {DEMO_VIP})")
        for line in SESSION:
            self.cctrl(line)
        self.say(f"# Step 5: db1's eth0 holds the VIP {DEMO_VIP} as well as its own address")
        self.on("db1", *ADDRESSES, grep="inet")
        self.say("#   and a client reaches db1 through the VIP")
        self.client()
        self.say()
        self.cctrl("datasource db1 offline")
        self.say(f"# The VIP is gone: db1's eth0 holds only its own address, not {DEMO_VIP}")
        self.on("db1", *ADDRESSES, grep="inet")
        self.say("#   and the client gets no answer on the VIP")
        self.client()
        self.say()
        self.cctrl("switch to db2")
        self.say(f"# The VIP {DEMO_VIP} is on db2's eth0 now")
        self.on("db2", *ADDRESSES, grep="inet")
        self.say("#   and the client reaches db2 through it")
        self.client()
        self.say()
        self.cctrl("ls")


def dry_run(reason: str) -> int:
    print(f"# {reason}")
    print(
        "# Running the same session with --dry-run: each command is printed with the host it\n"
        "# would run on, not run.  After a stop, the manager runs the status command to confirm\n"
        "# that the VIP is gone.  (As `floatingip shell --dry-run` does, it skips asking each\n"
        "# host at start whether it already holds the VIP: a dry run has nothing real to ask.)\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        executors = {
            host: RecordingExecutor(dry_run_responder(sys.stdout, host=host))
            for host in ("db1", "db2")
        }
        with Manager.from_cluster_home(
            cluster_home(Path(tmp)),
            "demo",
            host="db1",
            executor=executors["db1"],
            executors=executors,
            reconcile_at_start=False,
            monitor_interval=0,
        ) as manager:
            shell = Shell(manager, stdout=sys.stdout)
            shell.run_script([*SESSION, "datasource db1 offline", "switch to db2", "ls"])
            print("# The manager stops (failsafe): it releases the VIP it holds on db2")
    return 0


def main() -> int:
    if os.geteuid() != 0:
        return dry_run("Not root: the demo's network namespaces need root.")
    missing = missing_programs()
    if missing:
        print(f"error: the demo needs: apt-get install {' '.join(missing)}", file=sys.stderr)
        return 1
    try:
        with Sandbox(["db1", "db2", "client"]) as sandbox, tempfile.TemporaryDirectory() as tmp:
            for host in ("db1", "db2"):
                sandbox.start_server(host, PORT)
            print(f"# sandbox: {', '.join(f'{h} {a}' for h, a in sandbox.addresses.items())}")
            print(f"# db1 and db2 each run a server on 0.0.0.0:{PORT} that answers with its name\n")
            executors = {host: sandbox.executor(host) for host in ("db1", "db2")}
            with Manager.from_cluster_home(
                cluster_home(Path(tmp)),
                "demo",
                host="db1",
                executor=executors["db1"],
                executors=executors,
            ) as manager:
                shell = Shell(manager, stdout=sys.stdout)
                Demo(sandbox, shell).run()
                stopped = manager.close()
            for outcome in stopped.commands:
                print(f"# manager stopped (failsafe): released {outcome.service} on {outcome.host}")
            if shell.failures:
                print(f"error: {shell.failures} command(s) failed", file=sys.stderr)
                return 1
    except SandboxError as exc:
        return dry_run(f"No sandbox here: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
