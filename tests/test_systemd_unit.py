"""The shipped unit of the agent: both variants pass `systemd-analyze verify` with this
installation's interpreter, and differ only in how the VIP commands get their privilege."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from floatingip.cli import main
from floatingip.systemd_unit import unit
from tests.conftest import require_program


def _settings(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


@pytest.mark.parametrize("mode", ["capabilities", "sudo"])
def test_systemd_analyze_verify_accepts_the_unit(mode: str, tmp_path: Path) -> None:
    analyze = require_program("systemd-analyze", package="systemd")
    path = tmp_path / "floatingip-agent@demo.service"  # an instance: the template's %i filled
    path.write_text(unit(mode))
    result = subprocess.run(
        [analyze, "verify", str(path)], capture_output=True, text=True, timeout=120
    )
    # exit 0 is not enough: unknown keys and bad values are only warned about
    assert result.returncode == 0 and result.stderr == "" and result.stdout == "", result


def test_the_printed_unit_runs_this_interpreter(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["systemd-unit"]) == 0
    settings = _settings(capsys.readouterr().out)
    (exec_start,) = settings["ExecStart"]
    assert exec_start.startswith(f"{sys.executable} -m floatingip agent --privilege capabilities ")
    assert settings["Type"] == ["notify"] and settings["NotifyAccess"] == ["main"]
    assert settings["WatchdogSec"] and settings["KillMode"] == ["mixed"]


def test_the_variants_differ_only_in_privilege() -> None:
    caps, sudo = _settings(unit("capabilities")), _settings(unit("sudo"))
    assert caps["AmbientCapabilities"] == ["CAP_NET_ADMIN CAP_NET_RAW"]
    assert caps["CapabilityBoundingSet"] == ["CAP_NET_ADMIN CAP_NET_RAW"]
    assert caps["NoNewPrivileges"] == ["yes"] and sudo["NoNewPrivileges"] == ["no"]
    assert "AmbientCapabilities" not in sudo and "CapabilityBoundingSet" not in sudo
    assert "--privilege sudo " in sudo["ExecStart"][0]
    privilege_keys = {"AmbientCapabilities", "CapabilityBoundingSet", "NoNewPrivileges"}
    same = {k: v for k, v in caps.items() if k not in privilege_keys | {"ExecStart"}}
    assert same == {k: v for k, v in sudo.items() if k in same}
    assert set(sudo) - set(caps) == {"ReadWritePaths"}
    # the agent's close takes up to ~55 s (floatingip.agent): systemd must wait longer
    assert caps["TimeoutStopSec"] == ["90s"]


def test_an_interpreter_path_that_needs_quoting_is_refused() -> None:
    with pytest.raises(ValueError, match="quoting"):
        unit("capabilities", python="/opt/my venv/bin/python")
