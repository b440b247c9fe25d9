"""Hostile arguments to the public API: each is a FloatingIPError naming it; nothing changes."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from floatingip import (
    FloatingIPError,
    Manager,
    RetryPolicy,
    UsageError,
    load_datasources,
    load_services,
)
from floatingip.cli import main
from floatingip.rules import load_rules, shipped_rules_dir
from floatingip.testing import RecordingExecutor

HOSTILE: list[object] = [
    None,
    0,
    -1,
    1.5,
    math.nan,
    True,
    [],
    ["db1"],
    {},
    {"db1": "master"},
    b"db1",
    bytearray(b"db1"),
    object(),
    "",
    "../../etc/passwd",
    "db1\x00",
    "db1\n",
    "db 1",
    "x" * 100,
    "dé1",
    "-db1",
]

Call = Callable[[Manager, Any], object]


def noop(event: object) -> None:
    pass


# Each public entry point with a hostile value in one argument; ``valid`` are the values that
# argument legitimately takes (they are not hostile there).
ENTRY_POINTS: dict[str, tuple[Call, tuple[object, ...]]] = {
    "datasource(name)": (lambda m, v: m.datasource(v), ()),
    "add_datasource(name)": (lambda m, v: m.add_datasource(v, role="slave"), ()),
    "add_datasource(role)": (lambda m, v: m.add_datasource("db9", role=v), ()),
    "add_datasource(host)": (lambda m, v: m.add_datasource("db9", role="slave", host=v), (None,)),
    "add_datasource(state)": (lambda m, v: m.add_datasource("db9", role="slave", state=v), ()),
    "update_datasource(name)": (lambda m, v: m.update_datasource(v, state="ONLINE"), ()),
    "update_datasource(role)": (lambda m, v: m.update_datasource("db1", role=v), ()),
    "update_datasource(state)": (lambda m, v: m.update_datasource("db1", state=v), ()),
    "set_policy(mode)": (lambda m, v: m.set_policy(v), ()),
    "switch(to)": (lambda m, v: m.switch(v), (None,)),
    "switch_target(to)": (lambda m, v: m.switch_target(v), (None,)),
    "run_service(name)": (lambda m, v: m.run_service(v, "status"), ()),
    "run_service(action)": (lambda m, v: m.run_service("master", v), ()),
    "run_service(host)": (lambda m, v: m.run_service("master", "status", host=v), (None,)),
    "wait_for_announcements(timeout)": (
        lambda m, v: m.wait_for_announcements(v),
        (None, 0, 1.5),
    ),
    "add_listener(listener)": (lambda m, v: m.add_listener(v), ()),
    "remove_listener(listener)": (lambda m, v: m.remove_listener(v), ()),
}


def snapshot(manager: Manager, recorder: RecordingExecutor) -> tuple[object, ...]:
    """Everything a caller (or the rules) could see change."""
    return (
        dict(manager.datasources),
        dict(manager.held),
        manager.policy,
        dict(manager.problems),
        [(event.kind, event.message) for event in manager.history],
        list(recorder.calls),
        manager._engine.facts,
    )


@pytest.fixture
def recorder() -> RecordingExecutor:
    return RecordingExecutor()


@pytest.fixture
def manager(demo_home: Path, recorder: RecordingExecutor) -> Iterator[Manager]:
    with Manager.from_cluster_home(
        demo_home, "demo", host="db1", executor=recorder, monitor_interval=0
    ) as manager:
        manager.update_datasource("db1", state="ONLINE")
        manager.update_datasource("db2", state="ONLINE")
        yield manager


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_public_method_refuses_hostile_arguments_and_changes_nothing(
    manager: Manager, recorder: RecordingExecutor, entry: str
) -> None:
    call, valid = ENTRY_POINTS[entry]
    for value in HOSTILE:
        if any(value is ok or (type(value) is type(ok) and value == ok) for ok in valid):
            continue
        before = snapshot(manager, recorder)
        with pytest.raises(FloatingIPError) as raised:
            call(manager, value)
        message = str(raised.value)
        assert message and "Traceback" not in message, (entry, value)
        assert snapshot(manager, recorder) == before, f"{entry} with {value!r} changed something"
    assert manager.held == {"master": "db1"}  # and the manager still works
    assert [
        outcome.action for outcome in manager.update_datasource("db1", state="OFFLINE").commands
    ] == ["stop"]


def test_a_type_error_names_the_argument_and_what_it_should_be(manager: Manager) -> None:
    with pytest.raises(UsageError, match=r"datasource name must be a string, not list \['db1'\]"):
        manager.update_datasource(["db1"], state="ONLINE")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"host name 'db1\\x00' is not valid"):
        manager.add_datasource("db9", role="slave", host="db1\x00")
    with pytest.raises(UsageError, match="timeout must be"):
        manager.wait_for_announcements("soon")  # type: ignore[arg-type]


# -- construction ------------------------------------------------------------------------


def supervisors() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("floatingip-supervisor-")}


def assert_no_new_supervisors(before: set[threading.Thread]) -> None:
    """Threads of managers closed just now exit on their own: wait for them, generously."""
    deadline = time.monotonic() + 30
    while (supervisors() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not supervisors() - before, "a failed construction left its supervisor running"


def constructor_arguments(home: Path, recorder: RecordingExecutor) -> dict[str, Any]:
    return {
        "cluster": "demo",
        "services": load_services(home, "demo"),
        "rulesets": load_rules(shipped_rules_dir()),
        "datasources": list(load_datasources(home, "demo").values()),
        "host": "db1",
        "executor": recorder,
        "monitor_interval": 10.0,
    }


CONSTRUCTOR: dict[str, tuple[object, ...]] = {
    # argument: its legitimate values among HOSTILE
    "cluster": (),
    "services": ({},),
    "rulesets": ([],),
    "datasources": ([],),
    "host": (None,),
    "executor": (None,),
    "executors": (None, {}),
    "policy": (),
    "history_size": (0,),
    "roles": (None, {}, {"db1": "master"}),
    "states": (None, {}),
    "reconcile_at_start": (True,),
    "monitor_interval": (0, 1.5),
    "retry": (None,),
}


@pytest.mark.parametrize("argument", sorted(CONSTRUCTOR))
def test_the_constructor_refuses_hostile_arguments_and_leaves_nothing_running(
    demo_home: Path, argument: str
) -> None:
    before = supervisors()
    for value in HOSTILE:
        if any(
            value is ok or (type(value) is type(ok) and value == ok) for ok in CONSTRUCTOR[argument]
        ):
            continue
        recorder = RecordingExecutor()
        arguments = constructor_arguments(demo_home, recorder)
        arguments[argument] = value
        if argument == "services":  # the shipped rules need service master: check it alone
            arguments["rulesets"] = []
        with pytest.raises(FloatingIPError):
            Manager(**arguments).close()
        assert recorder.calls == [], f"{argument}={value!r} ran commands before it was refused"
    assert_no_new_supervisors(before)


@pytest.mark.parametrize("host", ["../../etc/passwd", "db1\x00", "", "db1/../db2", "-n"])
def test_a_manager_host_must_be_a_plain_host_name(demo_home: Path, host: str) -> None:
    with pytest.raises(UsageError, match=r"host name .* is not valid"):
        Manager.from_cluster_home(demo_home, "demo", host=host, executor=RecordingExecutor())
    with pytest.raises(UsageError, match=r"host name .* is not valid"):
        Manager.from_cluster_home(
            demo_home, "demo", host="db1", executors={host: RecordingExecutor()}
        )


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("cluster_home", None),
        ("cluster_home", 3),
        ("cluster_home", b"/tmp"),
        ("cluster_home", "db1\x00"),
        ("cluster", None),
        ("cluster", "../demo"),
        ("rules_dir", 7),
        ("rules_dir", "x\x00"),
        ("monitor", 5),  # an option Manager does not take
    ],
)
def test_from_cluster_home_refuses_hostile_arguments(
    demo_home: Path, argument: str, value: object
) -> None:
    arguments: dict[str, Any] = {
        "cluster_home": demo_home,
        "cluster": "demo",
        "executor": RecordingExecutor(),
    }
    arguments[argument] = value
    with pytest.raises(FloatingIPError, match=argument.replace("_", ".")):
        Manager.from_cluster_home(**arguments)


@pytest.mark.parametrize("interval", [math.nan, math.inf, -math.inf, 1e300, -1, 0.001, "10", True])
def test_a_monitor_interval_that_would_spin_or_overflow_is_refused(
    demo_home: Path, interval: object
) -> None:
    """nan spun a core; inf and 1e300 killed the thread with OverflowError (retries lost)."""
    before = supervisors()
    with pytest.raises(UsageError, match="monitor interval must be"):
        Manager.from_cluster_home(
            demo_home, "demo", host="db1", executor=RecordingExecutor(), monitor_interval=interval
        )
    assert_no_new_supervisors(before)


@pytest.mark.parametrize(
    "policy",
    [
        {"initial": math.nan},
        {"initial": math.inf, "maximum": math.inf},
        {"maximum": 1e300},
        {"initial": 0},
        {"initial": -1.0},
        {"attempts": 2.5},
        {"attempts": "5"},
        {"attempts": -1},
        {"initial": 10.0, "maximum": 1.0},
    ],
)
def test_a_retry_policy_that_would_spin_or_overflow_is_refused(policy: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match="retry"):
        RetryPolicy(**policy)


def test_retry_delays_stay_bounded_after_many_attempts() -> None:
    policy = RetryPolicy(initial=1.0, maximum=30.0, attempts=10**6)
    assert policy.delay(1) == 1.0 and policy.delay(3) == 4.0
    assert policy.delay(5000) == 30.0  # 2 ** 4999 overflowed a float


# -- the command line ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "option",
    [
        ["--monitor", "-1"],
        ["--monitor", "nan"],
        ["--monitor", "inf"],
        ["--monitor", "1e300"],
        ["--host", "../../etc/passwd"],
        ["--host", "db1\x00"],
    ],
)
def test_the_shell_refuses_a_bad_option_in_one_line(
    demo_home: Path, capsys: pytest.CaptureFixture[str], option: list[str]
) -> None:
    args = ["shell", "--cluster-home", str(demo_home), "--cluster", "demo", "--dry-run", *option]
    assert main(args) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("floatingip: "), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
