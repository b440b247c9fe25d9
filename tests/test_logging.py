"""The log an operator greps or ships: one line per decision with stable keys, nothing at INFO
for a quiet change, and `--log-format json` giving one JSON object per line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from floatingip import Manager
from floatingip.commands import CommandResult
from floatingip.datasource import DataSource, Role
from floatingip.logformat import format_fields
from floatingip.rule_files import load_rules, shipped_rules_dir
from floatingip.service import load_services
from floatingip.supervisor import RetryPolicy
from floatingip.testing import RecordingExecutor
from tests.conftest import EXAMPLE_CLUSTER_HOME, write_service
from tests.test_shell import run_shell, safe_example_modes  # noqa: F401 (an autouse fixture)

DECISION_KEYS = {
    "event", "service", "action", "result", "rule", "datasource", "role", "state", "host",
    "cause", "command", "duration",
}  # fmt: skip


def _manager() -> Manager:
    return Manager.from_cluster_home(
        EXAMPLE_CLUSTER_HOME,
        "demo",
        host="db1",
        executor=RecordingExecutor(),
        reconcile_at_start=False,
        monitor_interval=0,
    )


def _info_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("floatingip") and r.levelno >= 20]


def _pairs(message: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in message.split(" ") if "=" in part)


def test_a_decision_is_one_info_line_with_the_facts_that_caused_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = _manager()
    try:
        caplog.set_level(logging.INFO)
        caplog.clear()
        manager.update_datasource("db1", state="ONLINE")
        lines = _info_lines(caplog)  # the decision; its steps are DEBUG but the safety check
        assert [r.getMessage().split(" ")[0] for r in lines] == ["duplicate", "event=decision"]
        decisions = lines[1:]
        fields = decisions[0].fields  # type: ignore[attr-defined]
        assert set(fields) >= DECISION_KEYS
        assert fields["service"] == "master"
        assert fields["action"] == "start"
        assert fields["result"] == "ok"
        assert fields["datasource"] == "db1"
        assert (fields["role"], fields["state"], fields["host"]) == ("master", "ONLINE", "db1")
        assert fields["cause"] == "datasource db1: state OFFLINE -> ONLINE"
        assert fields["command"] == "sudo -n /sbin/ifconfig eth0:0 10.10.12.22"
        # the text is the same fields as key=value, values with spaces quoted
        text = decisions[0].getMessage()
        assert text == format_fields(fields)
        assert 'cause="datasource db1: state OFFLINE -> ONLINE"' in text
        assert _pairs(text)["result"] == "ok"
    finally:
        manager.close()


def test_a_quiet_change_logs_nothing_at_info(caplog: pytest.LogCaptureFixture) -> None:
    manager = _manager()
    try:
        manager.update_datasource("db1", state="ONLINE")
        caplog.set_level(logging.INFO)
        caplog.clear()
        manager.update_datasource("db2", state="ONLINE")  # a slave: the rules ask for nothing
        manager.update_datasource("db2", state="OFFLINE")
        manager.update_datasource("db1", state="ONLINE")  # the same state again: nothing to do
        assert _info_lines(caplog) == []
    finally:
        manager.close()


def test_a_failed_command_is_one_error_line_with_its_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = Manager.from_cluster_home(
        EXAMPLE_CLUSTER_HOME,
        "demo",
        host="db1",
        executor=RecordingExecutor(
            lambda argv: CommandResult(argv, 1, "", "ifconfig: SIOCSIFADDR: denied")
        ),
        reconcile_at_start=False,
        monitor_interval=0,
    )
    try:
        caplog.set_level(logging.INFO)
        caplog.clear()
        manager.update_datasource("db1", state="ONLINE")
        failed = [r for r in _info_lines(caplog) if "result=failed" in r.getMessage()]
        assert len(failed) == 1
        assert failed[0].levelno == logging.ERROR
        fields = failed[0].fields  # type: ignore[attr-defined]
        assert fields["reason"] == "exit-status"
        assert "denied" in fields["error"]
    finally:
        manager.close()


def test_log_format_json_gives_one_object_per_line_with_the_decision_keys() -> None:
    result = run_shell(
        "datasource db1 online\ndatasource db2 online\ndatasource db1 offline\n",
        "--dry-run",
        "--host",
        "db1",
        "--log-format",
        "json",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]  # every line parses
    decisions = [line for line in lines if line.get("event") == "decision"]
    assert [(d["action"], d["result"]) for d in decisions] == [("start", "ok"), ("stop", "ok")]
    for decision in decisions:
        assert set(decision) >= DECISION_KEYS
        assert {"time", "level", "logger", "message"} <= set(decision)
        assert decision["level"] == "info"
    assert decisions[1]["cause"] == "datasource db1: state ONLINE -> OFFLINE"
    assert decisions[1]["state"] == "OFFLINE"
    # the slave's change (quiet) logged nothing at INFO
    assert not any("db2" in line["message"] for line in lines if line["level"] == "info")


def test_a_command_that_fails_is_logged_once_by_its_decision(
    caplog: pytest.LogCaptureFixture, cluster_home: Path, service_dir: Path
) -> None:
    """A real command (LocalExecutor) exiting non-zero: one ERROR line, the decision's, which
    carries the exit status; the runner's own line is DEBUG."""
    write_service(
        service_dir, "master.properties",
        "name=master\ncommand.start=/bin/false 192.0.2.10\ncommand.stop=/bin/true\n",
    )  # fmt: skip
    manager = Manager(
        cluster="demo",
        services=load_services(cluster_home, "demo"),
        rulesets=load_rules(shipped_rules_dir()),
        datasources=[DataSource("demo", "db1", "db1", Role.MASTER)],
        host="db1",
        reconcile_at_start=False,
        monitor_interval=0,
        retry=RetryPolicy(attempts=0),
    )
    try:
        caplog.set_level(logging.INFO)
        caplog.clear()
        manager.update_datasource("db1", state="ONLINE")
        lines = _info_lines(caplog)
        assert [r.levelno for r in lines] == [logging.ERROR], [r.getMessage() for r in lines]
        assert "exited with status 1" in lines[0].fields["error"]  # type: ignore[attr-defined]
    finally:
        manager.close()
