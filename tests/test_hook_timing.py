"""The hooks' timing line (floatingip/hooks/timing.py): under -v, one line per call saying when
the tool started it and when each step ended, on the monotonic clock a benchmark compares with
its own; without -v, nothing more than the one report line.  And the hook's start-up imports
nothing it does not use."""

from __future__ import annotations

import dataclasses
import logging
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from floatingip.hooks import patroni
from floatingip.hooks.core import Report, run_plan
from floatingip.hooks.timing import Timeline, started
from floatingip.testing import FakeNetwork, RecordingExecutor
from tests.conftest import PATIENCE, wait_until
from tests.test_hooks import VIP, ProbeCounter, context_for, parse, run

TIMING = re.compile(
    r"^patroni on_role_change primary demo: timing: called (\d+\.\d+) \(monotonic s\)"
)


def timing_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The timing lines logged; each at INFO, which a hook shows only with -v."""
    records = [r for r in caplog.records if "timing: called" in r.getMessage()]
    assert all(record.levelno == logging.INFO for record in records)
    return [record.getMessage() for record in records]


def test_the_timing_line_marks_each_step_after_the_call(
    demo_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = time.monotonic()
    with caplog.at_level(logging.INFO, logger="floatingip"):
        report = run(
            demo_home, "patroni", "on_role_change", "primary", "demo", db1=RecordingExecutor()
        )
    assert report.exit_code == 0, report.line
    [line] = timing_lines(caplog)
    match = TIMING.match(line)
    assert match is not None, line
    assert float(match[1]) <= before  # this process (pytest) started before the test
    steps = [part.rsplit(" +", 1) for part in line.split("; ")[1:]]
    names = [name for name, _ in steps]
    assert names[0] == "process" and "locked" in names and names[-1] == "closed", names
    start = next(name for name in names if name.startswith("master start ok"))
    assert "probe" in start and "ip addr add" in start, start
    offsets = [float(at) for _, at in steps]
    assert offsets[names.index("locked")] <= offsets[names.index(start)] <= offsets[-1]


def test_refusals_in_a_row_are_counted_not_listed(
    demo_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    network = FakeNetwork(["db1", "db2"])
    network.addresses["db1"].add(VIP)
    db2 = ProbeCounter(network.executor("db2"))
    context = dataclasses.replace(context_for(demo_home, db2=db2), release_wait=PATIENCE)
    argv = parse("patroni", "--datasource", "db2", "on_role_change", "primary", "demo")
    reports: list[Report] = []
    with caplog.at_level(logging.INFO, logger="floatingip"):
        worker = threading.Thread(
            target=lambda: reports.append(run_plan(patroni.plan(argv, context), context))
        )
        worker.start()
        assert wait_until(lambda: db2.probes >= 4)  # refused, again and again
        network.addresses["db1"].discard(VIP)
        worker.join()
    assert reports[0].exit_code == 0, reports[0].line
    [line] = timing_lines(caplog)
    refused = [part for part in line.split("; ") if "master start refused" in part]
    assert len(refused) == 2, line  # the first, and the last with the count
    count = int(re.search(r"again, (\d+) times", refused[1])[1])  # type: ignore[index]
    assert count + 1 == db2.probes - 1  # every probe but the granted one was a refusal
    assert "master start ok" in line.split("; ")[-2]


def test_without_v_a_hook_prints_its_one_line_only(demo_home: Path) -> None:
    argv = ["hook", "patroni", "--cluster-home", str(demo_home), "--host", "db1"]
    quiet = subprocess.run([sys.executable, "-m", "floatingip", *argv, "on_reload", "primary",
                            "demo"], capture_output=True, text=True, timeout=PATIENCE)  # fmt: skip
    assert quiet.returncode == 0
    assert quiet.stderr.splitlines() == [
        "floatingip hook patroni: patroni on_reload primary demo: nothing to do: "
        "a reload changes no role"
    ]


def test_started_is_on_the_monotonic_clock_to_the_tick() -> None:
    before = time.monotonic()
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    after = time.monotonic()
    try:
        when = started(child.pid)
    finally:
        child.communicate(b"")
    assert when is not None
    assert before - 0.011 <= when <= after  # /proc counts 10 ms ticks, rounded down
    assert started(2**22 + 1) is None  # no such process
    assert Timeline().process is not None


def test_the_hook_start_up_does_not_import_asyncio() -> None:
    """The etcd agent's modules (asyncio, 15-20 ms here) load only for `floatingip agent`."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, floatingip.cli; print('asyncio' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert loaded.stdout.strip() == "False"
