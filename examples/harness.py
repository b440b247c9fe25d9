"""Drive floatingip the way an embedding cluster manager does: through the Python API.

The seed's session, as a cluster manager reports it to floatingip: the slave db2 and the master
db1 go ONLINE and db1 takes the VIP; db1 goes OFFLINE and drops it; the master role switches to
db2, which takes the VIP.  One Manager acts for every database host, each through its own
executor; after each change the harness prints what ran where, from the result the call returns.
(With another cluster home, its master and first slave play db1 and db2.)

    python examples/harness.py                            # records the commands; runs nothing
    sudo python examples/harness.py --execute --vip 192.0.2.22
        # runs them for real, inside a throwaway network of namespaces (floatingip.sandbox):
        # hosts db1 and db2 on 192.0.2.0/24, never this machine's own interfaces

--execute refuses a VIP outside the sandbox's network (the example's 10.10.12.22 is the seed's
documentation address); --vip runs a copy of the cluster home with that address instead.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import floatingip
import floatingip.testing
from floatingip.sandbox import Sandbox, SandboxError

EXAMPLE_HOME = Path(__file__).resolve().parent / "cluster-home"
SANDBOX_NETWORK = ipaddress.ip_network("192.0.2.0/24")
logger = logging.getLogger("harness")


def forward(event: floatingip.Event) -> None:
    """A listener: where a cluster manager forwards floatingip's events (its log, monitoring)."""
    if not event.ok:
        logger.warning("floatingip: %s", event.message)


def show(commands: Iterable[floatingip.CommandOutcome]) -> None:
    for outcome in commands:
        status = "ok" if outcome.ok else f"FAILED: {outcome.error}"
        print(f"  [{outcome.host}] {shlex.join(outcome.argv)} -> {status}")


def players(home: Path, cluster: str) -> tuple[floatingip.DataSource, floatingip.DataSource]:
    """The master and the first slave of the cluster: db1 and db2 in the example."""
    datasources = floatingip.load_datasources(home, cluster).values()
    masters = [ds for ds in datasources if ds.role is floatingip.Role.MASTER]
    slaves = [ds for ds in datasources if ds.role is floatingip.Role.SLAVE]
    if not masters or not slaves:
        raise floatingip.UsageError(f"cluster {cluster!r} needs a master and a slave datasource")
    return masters[0], slaves[0]


def session(manager: floatingip.Manager, master: str, slave: str) -> bool:
    """The seed's session; True if every change and command succeeded."""
    ok = True
    for name, state in [(slave, "ONLINE"), (master, "ONLINE"), (master, "OFFLINE")]:
        result = manager.update_datasource(name, state=state)
        print(f"DataSource '{name}' is now {state}")
        show(result.commands)
        ok &= result.ok
    switched = manager.switch(slave)
    print(f"SWITCH TO '{switched.new_master}' {'WAS SUCCESSFUL' if switched.ok else 'FAILED'}")
    show(outcome for step in switched.steps for outcome in step.commands)
    for service, datasource in manager.held.items():
        host = manager.datasource(datasource).host
        print(f"VIP {service} is held on {host} (for datasource {datasource})")
    return ok and switched.ok


def run(
    home: Path,
    cluster: str,
    executors: Mapping[str, floatingip.Executor],
    inspect: Callable[[], None] = lambda: None,
) -> bool:
    master, slave = players(home, cluster)
    manager = floatingip.Manager.from_cluster_home(
        home,
        cluster,
        host=master.host,  # where this manager runs; it reaches the others through executors
        executor=executors[master.host],
        executors=executors,
    )
    manager.add_listener(forward)
    with manager:
        ok = session(manager, master.name, slave.name)
        inspect()
        closed = manager.close()
    print("manager closed; the failsafe releases what it holds:")
    show(closed.commands)
    return ok and closed.ok


def refusal(home: Path, cluster: str, vip: str | None) -> str | None:
    """Why --execute must not run this cluster home in the sandbox, or None."""
    if vip is not None:
        if ipaddress.ip_address(vip) not in SANDBOX_NETWORK:
            return f"--vip {vip} is not in the sandbox's network {SANDBOX_NETWORK}"
        return None
    for service in floatingip.load_services(home, cluster).values():
        address = service.target.address
        if address is None or address not in SANDBOX_NETWORK:
            return (
                f"service {service.name!r} uses {address or 'no address that can be checked'}, "
                f"not an address of the sandbox's network {SANDBOX_NETWORK} (TEST-NET-1; "
                "10.10.12.22 is the seed's documentation address); "
                "pass --vip 192.0.2.22 to run a copy of the cluster home with that VIP"
            )
    return None


def copy_with_vip(home: Path, cluster: str, vip: str, directory: Path) -> Path:
    """A copy of ``home`` whose service files use ``vip`` instead of their own address."""
    copy = directory / "cluster-home"
    shutil.copytree(home, copy)
    for service in floatingip.load_services(copy, cluster).values():
        if service.target.address is not None:
            text = service.path.read_text(encoding="utf-8")
            service.path.write_text(text.replace(str(service.target.address), vip))
    return copy


def hosts(home: Path, cluster: str) -> list[str]:
    return sorted({ds.host for ds in floatingip.load_datasources(home, cluster).values()})


def execute(home: Path, cluster: str, vip: str | None) -> bool:
    with tempfile.TemporaryDirectory() as tmp, Sandbox(hosts(home, cluster)) as sandbox:
        if vip is not None:
            home = copy_with_vip(home, cluster, vip, Path(tmp))

        def inspect() -> None:
            print("the sandbox's hosts now hold (ip -4 addr show dev eth0):")
            for host in sandbox.addresses:
                print(f"{host} eth0: {' '.join(sandbox.addresses_on(host))}")

        executors = {host: sandbox.executor(host) for host in sandbox.addresses}
        return run(home, cluster, executors, inspect)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster-home", type=Path, default=EXAMPLE_HOME)
    parser.add_argument("--cluster", default="demo")
    parser.add_argument(
        "--execute",
        action="store_true",
        help="run the commands for real inside a sandbox network (root); never on this machine",
    )
    parser.add_argument("--vip", help="with --execute: use this VIP (in 192.0.2.0/24) instead")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        if not args.execute:
            recorder = floatingip.testing.RecordingExecutor()  # records, runs nothing
            executors = dict.fromkeys(hosts(args.cluster_home, args.cluster), recorder)
            return 0 if run(args.cluster_home, args.cluster, executors) else 1
        why = refusal(args.cluster_home, args.cluster, args.vip)
        if why is not None:
            print(f"refusing to run: {why}", file=sys.stderr)
            return 2
        return 0 if execute(args.cluster_home, args.cluster, args.vip) else 1
    except (floatingip.FloatingIPError, SandboxError) as exc:
        print(f"cannot run: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
