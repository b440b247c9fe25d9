"""Where the callbacks' switchover time goes, for patroni_switch.py: ``floatingip hook patroni
-v`` logs one timing line per call in Patroni's log (floatingip/hooks/timing.py), on the same
monotonic clock as the benchmark.  Per switchover, from the moment the leader key stopped naming
the old leader (*decided*): when the key named the new one, when each host's Patroni started its
callback (the new leader's on_role_change after its promote, the old leader's on_stop after its
PostgreSQL stopped: Patroni's part, no hook can cut it), and when each step of the hook ended.
"""

from __future__ import annotations

import re
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PHASES", "Call", "calls", "hook_figures", "hook_rows", "merged", "phases"]

_LINE = re.compile(
    r"floatingip\.hooks\.core: patroni (?P<action>\S+) (?P<role>\S+) \S+: "
    r"timing: called (?P<called>[\d.]+) \(monotonic s\); (?P<marks>.*)$"
)
_AGAIN = re.compile(r".* again, (\d+) times")
_MARK = re.compile(r"^(?P<step>.*?) \+(?P<at>-?[\d.]+)$")

# figure -> its label in the table, in the order of a switchover
PHASES = {
    "named": "leader key names the new leader",
    "stop_called": "old leader's Patroni starts on_stop (its PostgreSQL stopped)",
    "released": "old leader's hook: VIP released",
    "called": "new leader's Patroni starts on_role_change (after its promote)",
    "process": "new leader's hook: process started (sudo done)",
    "imported": "new leader's hook: imports done",
    "locked": "new leader's hook: lock taken",
    "first_start": "new leader's hook: first start attempt ended",
    "taken": "new leader's hook: VIP taken (start ok)",
}


@dataclass(frozen=True)
class Call:
    host: str
    action: str
    role: str
    called: float
    marks: tuple[tuple[str, float], ...]  # (step, seconds after called)

    def first(self, prefix: str) -> float | None:
        """When the first step starting with ``prefix`` ended (monotonic), or None."""
        return next((self.called + at for step, at in self.marks if step.startswith(prefix)), None)

    def count(self, prefix: str) -> int:
        """How many times a step starting with ``prefix`` ended (repeats counted)."""
        again = [_AGAIN.match(step) for step, _ in self.marks if step.startswith(prefix)]
        return sum(int(match[1]) if match else 1 for match in again)


def calls(logs: Iterable[tuple[str, Path]]) -> list[Call]:
    """Every timing line in the (host, Patroni log) given."""
    found = []
    for host, log in logs:
        if not log.exists():
            continue
        for line in log.read_text(errors="replace").splitlines():
            match = _LINE.search(line)
            if match is None:
                continue
            marks = [_MARK.match(part) for part in match["marks"].split("; ")]
            found.append(
                Call(host, match["action"], match["role"], float(match["called"]),
                     tuple((m["step"], float(m["at"])) for m in marks if m is not None))
            )  # fmt: skip
    return sorted(found, key=lambda call: call.called)


def phases(
    found: Sequence[Call], switches: Sequence[tuple[float, float, float, float, str, str]]
) -> dict[str, Any]:
    """Per switchover (start, end, decided, named, old, new): each PHASES figure after the
    decision (lists under ``hook_<figure>``), and the starts refused meanwhile.  Every call's
    steps go to stderr, after the decision: the evidence behind the figures."""
    result: dict[str, Any] = {f"hook_{figure}": [] for figure in PHASES}
    result["hook_refused"] = 0
    for start, end, decided, named, old, new in switches:
        here = [call for call in found if start <= call.called < end]
        print(f"switchover {old} -> {new}, after the decision:", file=sys.stderr)
        for call in here:
            after = call.called - decided
            steps = "; ".join(f"{step} {after + at:+.3f}" for step, at in call.marks)
            print(f"  {call.host} {call.action} {call.role}: called {after:+.3f}; "
                  f"{steps}", file=sys.stderr)  # fmt: skip
        take = next((c for c in here if c.host == new and c.action == "on_role_change"
                     and c.role in ("master", "primary", "promoted")), None)  # fmt: skip
        stop = next((c for c in here if c.host == old and c.action == "on_stop"), None)
        times: dict[str, float | None] = {"named": named}
        if stop is not None:
            times.update(stop_called=stop.called, released=stop.first("master stop ok"))
        if take is not None:
            times.update(
                called=take.called, process=take.first("process"),
                imported=take.first("imported"), locked=take.first("locked"),
                first_start=take.first("master start"), taken=take.first("master start ok"),
            )  # fmt: skip
            result["hook_refused"] += take.count("master start refused")
        for figure, when in times.items():
            if when is not None:
                result[f"hook_{figure}"].append(when - decided)
    return result


def hook_figures(
    tool: str, directory: Path, switches: Sequence[tuple[float, float, float, float, str, str]]
) -> dict[str, Any]:
    """:func:`phases` of one round of the callbacks (their logs in ``directory``); {} for the
    other tools."""
    if tool != "hook":
        return {}
    logs = [(host, directory / f"{host}.patroni.log") for host in ("db1", "db2")]
    found = calls(logs)
    if not found:
        raise RuntimeError(f"no timing line of floatingip hook -v in {directory}/*.patroni.log")
    return phases(found, switches)


def merged(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The rounds' phases together: each figure's median and max, the refused starts summed."""
    result: dict[str, Any] = {}
    for figure in PHASES:
        values = [x for part in parts for x in part.get(f"hook_{figure}", [])]
        if values:
            result[f"hook_{figure}_median_s"] = statistics.median(values)
            result[f"hook_{figure}_max_s"] = max(values)
    if any("hook_refused" in part for part in parts):
        result["hook_refused"] = sum(part.get("hook_refused", 0) for part in parts)
    return result


def hook_rows(tool: str, figures: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The table's rows: each phase's median (max) after the decision."""
    table = []
    for figure, label in PHASES.items():
        if f"hook_{figure}_median_s" in figures:
            median, most = figures[f"hook_{figure}_median_s"], figures[f"hook_{figure}_max_s"]
            table.append((f"{tool}: decided -> {label}, median (max)",
                          f"{median:.2f} s ({most:.2f} s)", ""))  # fmt: skip
    if "hook_refused" in figures:
        table.append((f"{tool}: starts refused while the old leader still had the VIP",
                      f"{figures['hook_refused']}", ""))  # fmt: skip
    return table
