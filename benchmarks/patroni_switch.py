"""Patroni switchovers with client writes through the VIP, floatingip beside vip-manager (needs
root, patroni, postgresql-15, etcd-server and, for the comparison, vip-manager).

An etcd member, two database hosts (db1, db2: Patroni 3.0, PostgreSQL 15) and a client, each in a
network namespace.  Per tool a fresh Patroni cluster (scope demo) bootstraps on db1, db2 joins,
a writer in the client starts, and ``patronictl switchover --force`` moves the leader N times:
``watch`` (``floatingip agent --patroni-scope demo`` on each host), ``hook`` (``floatingip hook
patroni -v`` as the callbacks; _hook_timing.py reads each call's timing line in Patroni's log),
``vm1000`` and ``vm100`` (vip-manager reading the leader key every 1000 ms, its default, or 100).
Debian's vip-manager 1.0.2 has only etcd's v2 client and etcd 3.4 keeps v2 and v3 keys apart:
for vip-manager Patroni runs with its ``etcd`` section (v2 API), for floatingip with ``etcd3``.

The writer (_pg_writer.py): an INSERT every 5 ms through the VIP, reconnecting on any error;
Patroni's keys read every 5 ms: the switch is decided when the leader key stops naming the old
leader.  Per switchover: the gap with no successful transaction, decision to VIP and to first
write on the new leader, failed transactions (by server), writes the OLD leader acknowledged
after the decision (goal: 0); both hosts polled for the VIP about every ms (never two holders).
Goal: floatingip's gap shorter than vip-manager's, default and tuned.  ``--short``: two
switchovers, floatingip's DCS watch and callbacks and vip-manager's default.
"""

from __future__ import annotations

import argparse
import collections
import functools
import itertools
import json
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import Overlaps, emit, start_vip_manager
from _hook_timing import hook_figures, hook_rows, merged
from _pg_writer import CREATE

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the test harness

from floatingip.sandbox import Sandbox, SandboxError
from tests.integration.etcd_cluster import EtcdCluster, die_with_parent
from tests.integration.test_hook_patroni import BINDIR, FAILOVER_PATIENCE, PatroniNode
from tests.integration.test_hook_repmgr import hook_workspace
from tests.integration.test_hooks_contract import VIP
from tests.integration.test_patroni_source import start_agent

PREFIX = "/service/demo/"  # Patroni's keys for scope demo
LEADER_KEY = PREFIX + "leader"
DATABASES = ("db1", "db2")
TOOLS = {
    "watch": "floatingip DCS watch",
    "hook": "floatingip callbacks",
    "vm1000": "vip-manager 1000 ms (default)",
    "vm100": "vip-manager 100 ms (tuned)",
}
RATE = 200  # transactions a second
STEADY = 2.0  # seconds of writes on the new leader before the next switchover
WRITER = Path(__file__).resolve().parent / "_pg_writer.py"


def missing() -> str | None:
    """Why this machine cannot run the benchmark (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for program, package in (("patroni", "patroni"), ("etcd", "etcd-server"),
                             ("psql", "postgresql-client"), ("runuser", "util-linux")):  # fmt: skip
        if shutil.which(program) is None:
            return f"needs {program} (Debian: {package})"
    if not (BINDIR / "initdb").exists():
        return "needs PostgreSQL 15 (Debian: postgresql-15)"
    return None


def wait(condition: Callable[[], object], what: str, timeout: float = FAILOVER_PATIENCE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {timeout:g} s: {what}")
        time.sleep(0.2)


def members(node: PatroniNode) -> dict[str, tuple[str, str]]:
    """``patronictl list`` from ``node``: member -> (role, state)."""
    listed = node.patronictl("list", "--format", "json")
    if listed.returncode != 0:
        return {}
    return {m["Member"]: (m.get("Role", ""), m.get("State", "")) for m in json.loads(listed.stdout)}


def sql(sandbox: Sandbox, host: str, query: str) -> str | None:
    """``query`` on ``host``'s PostgreSQL (its own address, not the VIP) from the client."""
    result = sandbox.run(
        "client",
        ["env", "PGCONNECT_TIMEOUT=3", "psql", "-h", sandbox.addresses[host], "-U", "postgres",
         "-At", "-c", query],
        check=False, timeout=20,
    )  # fmt: skip
    return result.stdout.strip() if result.ok else None


def leads_with_replica(sandbox: Sandbox, node: PatroniNode, leader: str, replica: str) -> bool:
    """Patroni says ``leader`` leads and ``replica`` streams from it (Patroni 3.0 lists a
    replica as running before its WAL receiver is connected: a switchover then loses writes)."""
    if members(node).get(leader, ("", ""))[0] != "Leader":
        return False
    streaming = (
        "SELECT count(*) FROM pg_stat_replication "
        f"WHERE application_name = '{replica}' AND state = 'streaming'"
    )
    return sql(sandbox, leader, streaming) == "1"


class Writer:
    """_pg_writer.py in the client's namespace."""

    def __init__(self, sandbox: Sandbox, api: str) -> None:
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", sandbox.namespaces["client"], sys.executable, str(WRITER),
             VIP, sandbox.addresses["etcd"], api, PREFIX, str(RATE)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=die_with_parent,
        )  # fmt: skip

    def ask(self, line: str) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(self.process.stdout.readline() or "{}")
        return answer

    def writes_to(self, member: str) -> None:
        def there() -> bool:
            last = self.ask("status").get("last")
            return last is not None and last[1] == member

        wait(there, f"a write through the VIP reaches {member}")

    def stop(self) -> dict[str, Any]:
        records = self.ask("stop")
        self.process.wait(timeout=30)
        return records


@contextmanager
def tool_side(
    tool: str, sandbox: Sandbox, work: Path, etcd: EtcdCluster, hook: str
) -> Iterator[tuple[str, str]]:
    """``tool``'s processes running: yields Patroni's DCS section and its callback line."""
    if tool == "hook":  # -v: each call's timing line in Patroni's log (_hook_timing.py)
        yield "etcd3", f"{hook} -v"
        return
    processes: dict[str, subprocess.Popen[bytes]] = {}
    for host in DATABASES:
        if tool == "watch":
            processes[host] = start_agent(sandbox, work, host, etcd)
        else:
            processes[host] = start_vip_manager(
                sandbox.namespaces[host], work / f"{tool}-{host}.log", vip=VIP, key=LEADER_KEY,
                value=host, endpoints=etcd.endpoints, interval=int(tool[2:]),
            )  # fmt: skip
    try:
        yield ("etcd3", "true") if tool == "watch" else ("etcd", "true")
    finally:
        for process in processes.values():  # SIGTERM: each releases what it holds
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def fresh(sandbox: Sandbox, work: Path, etcd: EtcdCluster, name: str) -> Path:
    """The run's directory (pg/ for postgres); no VIP, no Patroni key left from the last."""
    directory = work / name
    (directory / "pg").mkdir(parents=True)
    directory.chmod(0o755)
    account = pwd.getpwnam("postgres")
    os.chown(directory / "pg", account.pw_uid, account.pw_gid)
    etcd.etcdctl("client", "del", "--prefix", "/service/demo")
    etcd.etcdctl_v2("client", "rm", "--recursive", "/service/demo")
    for host in DATABASES:
        sandbox.run(host, ["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"], check=False)
    sandbox.run("client", ["ip", "neigh", "flush", "all"], check=False)
    return directory


def run_tool(
    tool: str, sandbox: Sandbox, work: Path, etcd: EtcdCluster, hook: str, switches: int, run: int
) -> dict[str, Any]:
    directory = fresh(sandbox, work, etcd, f"{tool}-{run}")
    endpoint = f"{sandbox.addresses['etcd']}:2379"
    nodes: dict[str, PatroniNode] = {}
    began: list[float] = []
    with tool_side(tool, sandbox, work, etcd, hook) as (dcs, callback):
        try:
            nodes["db1"] = PatroniNode(sandbox, "db1", directory, endpoint, callback, dcs=dcs)
            wait(lambda: members(nodes["db1"]).get("db1", ("",))[0] == "Leader", "db1 leads")
            wait(lambda: sql(sandbox, "db1", CREATE) is not None, "the table made on db1")
            nodes["db2"] = PatroniNode(sandbox, "db2", directory, endpoint, callback, dcs=dcs)
            wait(lambda: leads_with_replica(sandbox, nodes["db1"], "db1", "db2"), "db2 streams")
            replayed = "SELECT to_regclass('bench_writes') IS NOT NULL"
            wait(lambda: sql(sandbox, "db2", replayed) == "t", "the table replayed on db2")
            writer = Writer(sandbox, "v3" if dcs == "etcd3" else "v2")
            overlaps = Overlaps([sandbox.namespaces[h] for h in DATABASES], VIP)
            try:
                writer.writes_to("db1")
                leader, other = "db1", "db2"
                for _ in range(switches):
                    time.sleep(STEADY)
                    began.append(time.monotonic())
                    done = nodes[leader].patronictl(
                        "switchover", "--leader", leader, "--candidate", other, "--force"
                    )
                    if done.returncode != 0:
                        raise RuntimeError(f"switchover to {other}: {done.stdout}{done.stderr}")
                    switched = functools.partial(
                        leads_with_replica, sandbox, nodes[other], other, leader
                    )
                    wait(switched, f"{other} leads and {leader} replicates")
                    writer.writes_to(other)
                    leader, other = other, leader
                time.sleep(STEADY)
            finally:
                seen = overlaps.close()
                records = writer.stop()
        finally:
            for node in nodes.values():
                node.stop()
    found = {**measure(began, records, overlaps.changes), **seen}
    return {**found, **hook_figures(tool, directory, found.pop("switches"))}


def measure(
    began: list[float], records: dict[str, Any], held: list[tuple[float, tuple[int, ...]]]
) -> dict[str, Any]:
    """Per switchover i (from began[i] to the next one): its figures in lists, and counts.
    ``held``: when the VIP's holders changed (indexes in DATABASES)."""
    ok = sorted((float(t), str(m)) for t, m in records["ok"])
    times = [t for t, _ in ok]
    failed = sorted((float(t), str(why).split(" ")[0], m) for t, why, m in records["failed"])
    leaders = [(float(t), leader, roles) for t, leader, roles in records["leaders"]]
    ends = [*began[1:], float("inf")]
    found: dict[str, Any] = {"gap": [], "to_write": [], "to_vip": [], "to_role": []}
    found.update(old_writes=0, failed=0, ok=len(ok), reasons=collections.Counter(), switches=[])
    for i, (start, end) in enumerate(zip(began, ends, strict=True)):
        old, new = ("db1", "db2") if i % 2 == 0 else ("db2", "db1")
        decided = next(t for t, leader, _ in leaders if start <= t < end and leader != old)
        promoted = next(t for t, leader, roles in leaders if start <= t < end and leader == new
                        and roles.get(new) in ("master", "primary", "promoted"))  # fmt: skip
        moved = next(t for t, who in held if t >= start and who == (DATABASES.index(new),))
        first = next(t for t, m in ok if t > decided and m == new)
        named = next(t for t, leader, _ in leaders if start <= t < end and leader == new)
        found["switches"].append((start, end, decided, named, old, new))
        found["gap"].append(max(b - a for a, b in itertools.pairwise(times) if start <= b < end))
        found["to_write"].append(first - decided)
        found["to_vip"].append(moved - decided)
        found["to_role"].append(promoted - decided)
        found["old_writes"] += sum(1 for t, m in ok if decided < t < end and m == old)
        for t, code, member in failed:  # code: mostly a SQLSTATE
            if start <= t < end:
                found["failed"] += 1
                where = {old: "old leader", new: "new leader"}.get(member, member)
                found["reasons"][f"{code} on the {where}"] += 1
    return found


def summary(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One tool's rounds together."""
    errors = [part["error"] for part in parts if "error" in part]
    if errors:
        return {"error": "; ".join(errors)}
    lists = {key: [x for part in parts for x in part[key]]
             for key in ("gap", "to_write", "to_vip", "to_role")}  # fmt: skip
    total = {key: sum(part[key] for part in parts)
             for key in ("old_writes", "failed", "ok", "two_holders")}  # fmt: skip
    return {
        **merged(parts),
        "switchovers": len(lists["gap"]),
        "gap_median_s": statistics.median(lists["gap"]), "gap_max_s": max(lists["gap"]),
        "decided_to_new_write_median_s": statistics.median(lists["to_write"]),
        "decided_to_new_write_max_s": max(lists["to_write"]),
        "decided_to_vip_median_s": statistics.median(lists["to_vip"]),
        "decided_to_vip_max_s": max(lists["to_vip"]),
        "decided_to_member_key_primary_median_s": statistics.median(lists["to_role"]),
        "failed_transactions": total["failed"], "transactions_ok": total["ok"],
        "old_leader_writes_after_decision": total["old_writes"],
        "failures_by_reason": dict(sum((part["reasons"] for part in parts), collections.Counter())),
        "two_holders": total["two_holders"],
        "two_holders_longest_s": max(part["two_holders_longest_s"] for part in parts),
    }  # fmt: skip


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="2 switchovers: watch, hook, vm1000")
    parser.add_argument("--switches", type=int, help="switchovers per tool (default 10, short 2)")
    parser.add_argument("--tools", help=f"comma-separated, of {', '.join(TOOLS)} (default all)")
    parser.add_argument(
        "--rounds", type=int, help="the tools in turn, ROUNDS times (default 2, short 1)"
    )
    args = parser.parse_args()
    args.switches = args.switches or (2 if args.short else 10)
    args.rounds = max(1, min(args.rounds or (1 if args.short else 2), args.switches))
    args.tools = (args.tools or ("watch,hook,vm1000" if args.short else ",".join(TOOLS))).split(",")
    unknown = [tool for tool in args.tools if tool not in TOOLS]
    if unknown:
        parser.error(f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(TOOLS)}")
    return args


def attempt(
    tool: str, sandbox: Sandbox, work: Path, etcd: EtcdCluster, hook: str, switches: int, run: int
) -> dict[str, Any]:
    """One round of ``tool``; a failure is reported (with the logs' ends on stderr), not raised."""
    try:
        return run_tool(tool, sandbox, work, etcd, hook, switches, run)
    except (RuntimeError, StopIteration, subprocess.SubprocessError) as exc:
        for log in sorted(work.glob(f"{tool}-{run}/*.log")) + sorted(work.glob("*.log")):
            print(f"--- {log}", log.read_text(errors="replace")[-3000:],
                  sep="\n", file=sys.stderr)  # fmt: skip
        return {"error": f"round {run + 1}: {type(exc).__name__}: {exc}"}


def main() -> int:
    args = parse()
    tools = [t for t in args.tools if not t.startswith("vm") or shutil.which("vip-manager")]
    reason = missing()
    if reason is not None:
        emit("patroni_switch", {"skipped": reason}, [("skipped", reason, "")])
        return 0
    parts: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}
    try:
        with (
            hook_workspace("patroni") as (work, hook),
            Sandbox(["db1", "db2", "client", "etcd"]) as sandbox,
        ):
            etcd = EtcdCluster(sandbox, ["etcd"], work / "etcd", enable_v2=True).start()
            try:
                # rounds of every tool in turn: a machine whose load drifts weighs on them all
                for run in range(args.rounds):
                    for tool in tools:
                        switches = args.switches // args.rounds + (
                            run < args.switches % args.rounds
                        )
                        parts[tool].append(attempt(tool, sandbox, work, etcd, hook, switches, run))
            finally:
                etcd.close()
    except SandboxError as exc:
        emit("patroni_switch", {"skipped": str(exc)}, [("skipped", str(exc), "")])
        return 0
    results = {TOOLS[tool]: summary(found) for tool, found in parts.items()}
    rows = table(results)
    if len(tools) < len(args.tools):
        rows.append(("vip-manager", "not installed (apt-get install vip-manager)", ""))
    settings = {"switches": args.switches, "rounds": args.rounds, "rate_per_s": RATE}
    emit("patroni_switch", {**settings, **results}, rows)
    return 1 if any("error" in figures for figures in results.values()) else 0


def table(results: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    rows = []
    for tool, f in results.items():
        if "error" in f:
            rows.append((f"{tool}", f"FAILED: {f['error'][:200]}", ""))
            continue
        ours = tool.startswith("floatingip")
        rows += [
            (f"{tool}: no successful write, median (max)",
             f"{f['gap_median_s']:.2f} s ({f['gap_max_s']:.2f} s)",
             "< vip-manager's" if ours else ""),
            (f"{tool}: leader key changed -> first write on the new leader, median (max)",
             f"{f['decided_to_new_write_median_s']:.2f} s "
             f"({f['decided_to_new_write_max_s']:.2f} s)",
             ""),
            (f"{tool}: leader key changed -> VIP on the new leader only, median (max)",
             f"{f['decided_to_vip_median_s']:.2f} s ({f['decided_to_vip_max_s']:.2f} s)", ""),
            (f"{tool}: leader key changed -> new leader's member key says primary, median",
             f"{f['decided_to_member_key_primary_median_s']:.2f} s", "(Patroni's part)"),
            (f"{tool}: failed transactions (of {f['transactions_ok']} ok; "
             f"{', '.join(f'{n} {why}' for why, n in f['failures_by_reason'].items())})",
             f"{f['failed_transactions']}", ""),
            (f"{tool}: writes on the old leader after the leader key changed",
             f"{f['old_leader_writes_after_decision']}", "0"),
            (f"{tool}: both hosts held the VIP", f"{f['two_holders']:.0f} times", "never"),
        ]  # fmt: skip
        rows += hook_rows(tool, f)
    return rows


if __name__ == "__main__":
    sys.exit(main())
