"""VIP move on real network namespaces (needs root), measured from the switch: the VIP in the new
host's kernel, its first announcement at the client, and the client's first answer from it, for
the ip and ifconfig backends, a classic ifconfig service (command.* lines), a manager per host
(duplicate address probe first), IPv6 with unsolicited neighbour advertisements, without
announcements, and keepalived (VRRP, unicast) in the same namespaces.  Goals (issue #17): client
answered within 40 ms of a planned switch with one manager, within 100 ms with a manager per
host; never two holders.

``--load``: the same with two busy loops beside it.  ``--only WORD``: the cases whose label has
WORD.  The client, the kernels and the wire are watched by a process of its own
(benchmarks/_vip_watch.py), without starting a process per look.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from _common import VIP, cluster_home, emit, short_mode, vip_service
from _vip_watch import Keepalived, Watcher, busy_loops, probe_replies

from floatingip import Manager
from floatingip.commands import LocalExecutor
from floatingip.sandbox import Sandbox, SandboxError
from floatingip.supervisor import RetryPolicy

PORT = 3306
VIP6 = "2001:db8::22"
GOAL_ONE, GOAL_PER_HOST = 40.0, 100.0  # ms, switch to client answered


def ipv6_service(announcements: int) -> str:
    return (
        f"name=master\nvip.address={VIP6}/64\nvip.interface=eth0\nvip.na.count={announcements}\n"
        "vip.dad.wait=0.2\n"
    )


def classic_service(arp: int) -> str:
    """The seed's kind of service: its own ifconfig commands, announced after start (issue 17)."""
    return (
        f"name=master\ncommand.start=sudo /sbin/ifconfig eth0:0 {VIP} netmask 255.255.255.0 up\n"
        "command.stop=sudo /sbin/ifconfig eth0:0 down\ncommand.status=sudo /sbin/ifconfig eth0:0\n"
        f"vip.arp.count={arp}\n"
    )


def _watched(
    sandbox: Sandbox, vip: str, cap: float, switch: Callable[[], None]
) -> dict[str, float | int | None]:
    """Run ``switch`` (db1 -> db2) watched from the client and the kernels: seconds after it
    started (None: not within ``cap``) and the two-holder count."""
    mac = sandbox.run("db2", ["cat", "/sys/class/net/eth0/address"]).stdout.strip()
    holders = [sandbox.namespaces["db1"], sandbox.namespaces["db2"]]
    watcher = Watcher(sandbox.namespaces["client"], holders, vip, PORT, mac)
    started = time.monotonic()
    watcher.start("db2", started, cap)
    switch()
    switched = time.monotonic() - started
    return {**watcher.result(), "switched": switched}


def move(
    sandbox: Sandbox,
    backend: str,
    arp: int,
    manager_per_host: bool,
    cap: float,
    ipv6: bool,
    dad_wait: float = 0.2,
) -> dict[str, float | int | None]:
    """One switch db1 -> db2 by floatingip, watched."""
    service = (
        ipv6_service(arp) if ipv6 else vip_service(arp=arp, backend=backend, dad_wait=dad_wait)
    )
    service = classic_service(arp) if backend == "classic" else service
    vip = VIP6 if ipv6 else VIP
    home = cluster_home(service)
    options = {"monitor_interval": 0, "retry": RetryPolicy(attempts=0)}
    if manager_per_host:
        managers = [
            Manager.from_cluster_home(home, "demo", host=h, executor=sandbox.executor(h), **options)  # type: ignore[arg-type]
            for h in ("db1", "db2")
        ]
    else:
        executors = {h: sandbox.executor(h) for h in ("db1", "db2")}
        managers = [Manager.from_cluster_home(home, "demo", executors=executors, **options)]  # type: ignore[arg-type]
    try:
        for manager in managers:
            manager.update_datasource("db2", state="ONLINE")
            manager.update_datasource("db1", state="ONLINE")
        for manager in managers:
            manager.wait_for_announcements(timeout=arp + 5)
        # set-up: the client forgets earlier runs, then learns db1's MAC for the VIP
        sandbox.run("client", ["ip", "-6" if ipv6 else "-4", "neigh", "flush", "dev", "eth0"])
        assert sandbox.ask("client", vip, PORT) == "db1"

        def switch() -> None:
            for name, role, state in (
                ("db1", None, "OFFLINE"),
                ("db1", "slave", None),
                ("db2", "master", None),
            ):
                for manager in managers:  # the coordinator: each step on every manager, in order
                    manager.update_datasource(name, role=role, state=state)

        return _watched(sandbox, vip, cap, switch)
    finally:
        for manager in managers:
            manager.close()


def keepalived_move(sandbox: Sandbox, advert: float, cap: float) -> dict[str, float | int | None]:
    """keepalived on db1 (priority 150, master) and db2 (100); the planned switch: db1's is
    stopped, and sends priority 0 as it goes."""
    own = {host: sandbox.addresses_on(host)[0] for host in ("db1", "db2")}
    daemons = {
        host: Keepalived(
            sandbox.namespaces[host],
            host,
            me=own[host],
            peer=own[peer],
            vip=VIP,
            priority=priority,
            advert=advert,
        )
        for host, peer, priority in (("db1", "db2", 150), ("db2", "db1", 100))
    }
    try:
        deadline = time.monotonic() + 30
        while VIP not in sandbox.addresses_on("db1") or VIP in sandbox.addresses_on("db2"):
            if time.monotonic() > deadline:
                raise SandboxError(f"keepalived did not settle: {daemons['db1'].log_text()[-800:]}")
            time.sleep(0.1)
        time.sleep(3 * advert)  # db2 has heard db1's adverts: a settled backup
        sandbox.run("client", ["ip", "-4", "neigh", "flush", "dev", "eth0"])
        assert sandbox.ask("client", VIP, PORT) == "db1"
        return _watched(sandbox, VIP, cap, daemons["db1"].stop)
    finally:
        for daemon in daemons.values():
            daemon.stop()
            daemon.remove()


def holder_replies(sandbox: Sandbox, rounds: int) -> list[float]:
    """db1 holds the VIP; how fast it answers db2's duplicate address probes (seconds)."""
    db1 = sandbox.executor("db1")
    db1.run(["ip", "addr", "add", f"{VIP}/24", "dev", "eth0"])
    try:
        mac = sandbox.run("db2", ["cat", "/sys/class/net/eth0/address"]).stdout.strip()
        return probe_replies(sandbox.namespaces["db2"], mac, VIP, rounds)
    finally:
        db1.run(["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])


def command_costs(rounds: int) -> list[tuple[str, float]]:
    """What one command costs here (median ms): through floatingip's runner (its own session,
    parent-death signal and watchdog registration before exec), plain subprocess, `ip netns
    exec` (what each sandbox command pays on top), sudo, and the interpreter start of dad.py."""
    runner = LocalExecutor()
    show = ("ip", "-o", "-4", "addr", "show", "dev", "lo")
    python = (sys.executable, "-I", "-S", "-c", "pass")
    cases: list[tuple[str, Callable[[], object]]] = [
        ("`ip -o addr show` through floatingip.process", lambda: runner.run(show)),
        ("the same, plain subprocess.run", lambda: subprocess.run(show, capture_output=True)),
        ("the same, in `ip netns exec` (the sandbox)", lambda: runner.run(_in_netns(show))),
        ("the same, through `sudo -n`", lambda: runner.run(("sudo", "-n", *show))),
        ("`python -I -S` start (dad.py probe, NA sender)", lambda: runner.run(python)),
    ]
    costs = []
    for label, run in cases:
        times = []
        for _ in range(rounds):
            begun = time.perf_counter()
            run()
            times.append((time.perf_counter() - begun) * 1000)
        costs.append((label, statistics.median(times)))
    return costs


def _in_netns(argv: tuple[str, ...]) -> tuple[str, ...]:
    return ("ip", "netns", "exec", _COST_NETNS, *argv)


_COST_NETNS = f"fip-cost-{os.getpid()}"


def ms(value: float | int | None, cap: float) -> str:
    return f"> {cap:.0f} s" if value is None else f"{value * 1000:,.0f} ms"


def main() -> None:
    if os.geteuid() != 0:
        emit(
            "vip_move",
            {"skipped": "needs root (network namespaces)"},
            [("skipped", "needs root", "")],
        )
        return
    with busy_loops(2) if "--load" in sys.argv else contextlib.nullcontext():
        measure()


def _only() -> str | None:
    return sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None


def measure() -> None:
    # --short (make test's smoke run): one round, one announcement instead of three (the client
    # follows the first; the others only cost waiting), and a short wait for the no-ARP client
    rounds = 1 if short_mode() else 5
    cap = 2.0 if short_mode() else 60.0
    arp = 1 if short_mode() else 3
    # (backend, announcements, a manager per host, label, IPv6, vip.dad.wait)
    cases = [
        ("ip", arp, False, "ip backend, gratuitous ARP", False, 0.2),
        ("ifconfig", arp, False, "ifconfig backend, gratuitous ARP", False, 0.2),
        ("ip", arp, True, "ip backend, a manager per host (duplicate address check)", False, 0.2),
        ("ip", arp, True, "ip backend, a manager per host, vip.dad.wait=0.05", False, 0.05),
        ("ip", 0, False, "ip backend, no gratuitous ARP", False, 0.2),
        ("classic", arp, False, "classic ifconfig service, gratuitous ARP", False, 0.2),
        ("classic", 0, False, "classic ifconfig service, no gratuitous ARP", False, 0.2),
        ("ip", arp, False, "IPv6, neighbour advertisements", True, 0.2),
        ("ip", arp, True, "IPv6, a manager per host (NS duplicate check)", True, 0.2),
        ("ip", 0, False, "IPv6, no advertisements", True, 0.2),
    ]
    keepalived = [
        (1.0, "keepalived, advert_int 1 (default)"),
        (0.1, "keepalived, advert_int 0.1 (VRRPv3)"),
    ]
    only = _only()
    load = "--load" in sys.argv
    results: dict[str, object] = {"rounds": rounds, "load": "two busy loops" if load else None}
    rows: list[tuple[str, str, str]] = []
    runs: dict[str, list[dict[str, float | int | None]]] = {}
    labels: dict[str, tuple[str, bool, bool]] = {}
    command_ms: dict[str, float] = {}
    results["command_ms"] = command_ms
    try:
        with Sandbox(["db1", "db2", "client"]) as sandbox:
            for host in ("db1", "db2"):
                sandbox.start_server(host, PORT)
            for backend, arp, per_host, label, ipv6, dad_wait in cases:
                if only is not None and only not in label:
                    continue
                key = f"{backend}{'_per_host' if per_host else ''}_{'arp' if arp else 'no_arp'}"
                if ipv6:
                    key = f"ipv6{'_per_host' if per_host else ''}_{'na' if arp else 'no_na'}"
                key += "" if dad_wait == 0.2 else f"_dad_wait_{dad_wait:g}"
                runs[key] = [move(sandbox, backend, arp, per_host, cap, ipv6, dad_wait)
                             for _ in range(rounds if arp else 1)]  # fmt: skip
                labels[key] = (label, per_host, bool(arp))
            if shutil.which("keepalived"):
                for advert, label in keepalived:
                    if only is not None and only not in label:
                        continue
                    key = f"keepalived_advert_{advert:g}"
                    runs[key] = [keepalived_move(sandbox, advert, cap) for _ in range(rounds)]
                    labels[key] = (label, True, False)
            else:
                results["keepalived"] = "not installed (Debian: apt-get install keepalived)"
            if only is None:
                replies = holder_replies(sandbox, 20 if short_mode() else 200)
    except SandboxError as exc:
        emit("vip_move", {"skipped": str(exc)}, [("skipped", str(exc), "")])
        return
    for key, measured in runs.items():
        label, per_host, announced = labels[key]
        figures = {}
        for figure in ("up", "announced", "answered", "switched"):
            values = [run[figure] for run in measured]
            known = [float(v) for v in values if v is not None]
            figures[figure] = statistics.median(known) if len(known) == len(values) else None
        two = sum(int(run["two_holders"] or 0) for run in measured)
        results[key] = {
            f"{k}_ms": None if v is None else round(v * 1000, 1) for k, v in figures.items()
        }
        results[key]["two_holders"] = two  # type: ignore[index]
        goal = GOAL_PER_HOST if per_host else GOAL_ONE
        rows += [
            (f"{label}: VIP up in the new host's kernel", ms(figures["up"], cap), ""),
            (f"{label}: first announcement at the client", ms(figures["announced"], cap), ""),
            (f"{label}: client answered by it", ms(figures["answered"], cap),
             f"goal < {goal:.0f} ms" if announced
             else "" if key.startswith("keepalived") else "(why announcing matters)"),
            (f"{label}: two holders at once", str(two), "goal 0"),
        ]  # fmt: skip
    if only is None:
        answered = sorted(replies)
        results["probe_reply_ms"] = {
            "median": round(statistics.median(answered) * 1000, 2),
            "max": round(answered[-1] * 1000, 2),
            "rounds": len(answered),
        }
        rows.append((
            "duplicate address probe: the holder's answer, median (max)",
            f"{statistics.median(answered) * 1000:.2f} ms ({answered[-1] * 1000:.2f} ms)",
            "what vip.dad.wait must cover",
        ))  # fmt: skip
        subprocess.run(["ip", "netns", "add", _COST_NETNS], check=True)
        try:
            costs = command_costs(5 if short_mode() else 40)
        finally:
            subprocess.run(["ip", "netns", "delete", _COST_NETNS], check=False)
        for label, cost in costs:
            rows.append((f"one command: {label}", f"{cost:.1f} ms", ""))
            command_ms[label] = round(cost, 2)
    emit("vip_move", results, rows)


if __name__ == "__main__":
    main()
