"""--metrics' address, and what a user without the Prometheus client is told."""

from __future__ import annotations

import subprocess
import sys

import pytest

from floatingip.errors import UsageError
from floatingip.metrics import parse_address
from tests.conftest import EXAMPLE_CLUSTER_HOME, REPO


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("9464", ("127.0.0.1", 9464)),  # a bare port: this host only
        ("0.0.0.0:9464", ("0.0.0.0", 9464)),
        ("192.0.2.1:1", ("192.0.2.1", 1)),
        ("[::1]:9464", ("::1", 9464)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_metrics_addresses(text: str, address: tuple[str, int]) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["", "0", "65536", ":9464", "::1:9464", "host:", "host:port"])
def test_a_bad_metrics_address_names_the_option_and_the_value(text: str) -> None:
    with pytest.raises(UsageError, match=r"--metrics takes PORT or ADDRESS:PORT .*not "):
        parse_address(text)


def test_without_the_client_metrics_say_how_to_install_it() -> None:
    script = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "from floatingip.cli import main\n"
        f"sys.exit(main(['shell', '--cluster-home', {str(EXAMPLE_CLUSTER_HOME)!r}, '--cluster',"
        " 'demo', '--dry-run', '--metrics', '9464']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, input=""
    )
    assert result.returncode == 1
    assert "pip install 'floatingip[metrics]'" in result.stderr
    assert result.stdout == ""  # nothing ran: the manager was never built


def test_the_readme_lists_every_failure_reason() -> None:
    from floatingip.decision import REASONS

    readme = (REPO / "README.md").read_text()
    row = next(
        line for line in readme.splitlines() if "`floatingip_command_failures_total`" in line
    )
    listed = row.split("`reason`:", 1)[1]
    assert [word.split("`")[1] for word in listed.split(",")] == list(REASONS)
