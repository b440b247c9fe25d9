"""floatingip.checks: the pieces of ``floatingip check`` that are tested on their own (the checks'
verdicts are tested through the report, in tests/test_preflight.py)."""

from __future__ import annotations

import shlex
import socket
from pathlib import Path

import pytest

from floatingip.checks import listening_addresses, sudoers_hint
from floatingip.cli import main


def test_listening_addresses_reads_real_sockets() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        assert listening_addresses(port) == ["127.0.0.1"]
    with socket.create_server(("0.0.0.0", 0)) as anywhere:
        assert listening_addresses(anywhere.getsockname()[1]) == ["0.0.0.0"]
    with socket.create_server(("::", 0), family=socket.AF_INET6) as v6:
        assert listening_addresses(v6.getsockname()[1]) == ["::"]


def test_the_sudoers_hint_works_as_printed(
    demo_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hint = sudoers_hint(demo_home, "demo", "newbie")
    command = shlex.split(hint)
    assert command[0] == "floatingip"
    assert main(command[1:]) == 0
    out = capsys.readouterr().out
    assert "newbie ALL=(root) NOPASSWD:" in out
