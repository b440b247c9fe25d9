"""Engine throughput: state changes per second through Manager.update_datasource (with the
RecordingExecutor), and raw durable_rules doing the same matching in the same run.

Two kinds of change: "quiet" (a datasource on another host changes: the rules match, nothing
runs; most cluster events are these) and "VIP toggles" (the master here goes ONLINE/OFFLINE:
a command each, and the service fact updated).  Goal: >= 20,000 changes/s and >= 0.5 of raw.
"""

from __future__ import annotations

import importlib.util
import time

from _common import cluster_home, datasource_fact, emit, manager_facts, service_fact, short_mode
from durable import engine as durable_engine

from floatingip import Manager
from floatingip.rules import load_rules, shipped_rules_dir
from floatingip.testing import RecordingExecutor

SEED_SERVICE = (
    "name=master\ncommand.start=sudo /sbin/ifconfig eth0:0 10.10.12.22\n"
    "command.stop=sudo /sbin/ifconfig eth0:0 down\ncommand.status=sudo /sbin/ifconfig eth0:0\n"
)


def raw_floatingip_host() -> durable_engine.Host:
    """durable_rules alone with the shipped ruleset (no-op consequences) and the manager's facts."""
    (ruleset,) = load_rules(shipped_rules_dir())
    host = durable_engine.Host()
    host.register_rulesets({"FloatingIP": ruleset.definition(lambda rule: lambda closure: None)})
    for fact in (
        *manager_facts(),
        datasource_fact("db1", "db1", "master", "OFFLINE"),
        datasource_fact("db2", "db2", "slave", "OFFLINE"),
    ):
        host.assert_fact("FloatingIP", fact)
    return host


def raw_change(host: durable_engine.Host, i: int, toggles: bool) -> None:
    """Change number ``i``, as the manager makes it: the datasource fact replaced and, when the
    VIP toggles, the service fact too (what the manager does once the command ran)."""
    name, role = ("db1", "master") if toggles else ("db2", "slave")
    state = "ONLINE" if i % 2 == 0 else "OFFLINE"
    host.retract_fact("FloatingIP", {"id": f"datasource:{name}"})
    host.assert_fact("FloatingIP", datasource_fact(name, name, role, state))
    if toggles:
        host.retract_fact("FloatingIP", {"id": "service:master"})
        host.assert_fact("FloatingIP", service_fact(name if state == "ONLINE" else None))


def raw_durable_rules(changes: int, toggles: bool) -> float:
    """Changes/s of durable_rules alone: the same ruleset, the same facts, no-op consequences."""
    host = raw_floatingip_host()
    started = time.perf_counter()
    for i in range(changes):
        raw_change(host, i, toggles)
    return changes / (time.perf_counter() - started)


def through_manager(changes: int, toggles: bool, metrics: bool = False) -> tuple[float, int]:
    """``metrics``: with Prometheus metrics following the manager (floatingip.metrics)."""
    home = cluster_home(SEED_SERVICE)
    recorder = RecordingExecutor()
    manager = Manager.from_cluster_home(
        home, "demo", host="db1", executor=recorder, monitor_interval=0
    )
    if metrics:
        from floatingip.metrics import ManagerMetrics, prometheus

        ManagerMetrics(prometheus().CollectorRegistry()).attach(manager)
    name = "db1" if toggles else "db2"
    started = time.perf_counter()
    for i in range(changes):
        manager.update_datasource(name, state="ONLINE" if i % 2 == 0 else "OFFLINE")
    rate = changes / (time.perf_counter() - started)
    manager.close()
    return rate, len(recorder.calls)


def main() -> None:
    changes = 2_000 if short_mode() else 100_000
    results: dict[str, object] = {"changes": changes}
    rows = []
    for kind, toggles in (("quiet", False), ("vip_toggles", True)):
        raw = raw_durable_rules(changes, toggles)
        ours, commands = through_manager(changes, toggles)
        results[kind] = {
            "manager_changes_per_s": round(ours),
            "raw_durable_rules_changes_per_s": round(raw),
            "ratio": round(ours / raw, 3),
            "commands": commands,
        }
        label = "quiet changes" if kind == "quiet" else "VIP toggles (a command each)"
        rows += [
            (f"{label}: Manager", f"{ours:,.0f}/s", "goal >= 20,000/s" if kind == "quiet" else ""),
            (f"{label}: raw durable_rules", f"{raw:,.0f}/s", ""),
            (f"{label}: ratio", f"{ours / raw:.2f}", "goal >= 0.5" if kind == "quiet" else ""),
        ]
    if importlib.util.find_spec("prometheus_client") is not None:
        # The same changes with metrics on: a quiet change must not pay for them.
        for kind, toggles in (("quiet", False), ("vip_toggles", True)):
            # interleaved, best of three each: a shared machine's noise is larger than the cost
            plain = metered = 0.0
            for _ in range(3):
                plain = max(plain, through_manager(changes, toggles)[0])
                metered = max(metered, through_manager(changes, toggles, metrics=True)[0])
            results[f"{kind}_with_metrics"] = {
                "manager_changes_per_s": round(metered),
                "without_metrics_per_s": round(plain),
                "ratio": round(metered / plain, 3),
            }
            label = "quiet changes" if kind == "quiet" else "VIP toggles"
            rows.append((f"{label}: with metrics / without", f"{metered / plain:.2f}", ""))
    emit("engine_throughput", results, rows)


if __name__ == "__main__":
    main()
