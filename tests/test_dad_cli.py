"""floatingip/dad.py's command line, read without argparse (whose import would double the
script's start): the options the manager passes, and argparse's exit status 2 for bad usage."""

from __future__ import annotations

import subprocess
import sys

import pytest

from floatingip.dad import PROBE_ERROR, PROBE_SCRIPT, advertise_argv, main, probe_argv
from tests.conftest import require_root


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", "-S", PROBE_SCRIPT, *args], capture_output=True, text=True
    )


def test_it_starts_with_only_what_it_needs() -> None:
    imported = subprocess.run(
        [sys.executable, "-I", "-S", "-X", "importtime", PROBE_SCRIPT, "--help"],
        capture_output=True, text=True,
    ).stderr  # fmt: skip
    modules = {line.split("|")[-1].strip() for line in imported.splitlines() if "|" in line}
    assert not modules & {"argparse", "ipaddress", "pathlib", "socket", "re", "enum"}


def test_the_argv_the_manager_builds_is_read_as_meant(capsys: pytest.CaptureFixture[str]) -> None:
    require_root()  # a probe opens raw sockets
    # a probe of no address on the loopback: nobody else answers there
    probe = probe_argv("lo", ["127.0.0.1", "::1"], 0.01, sudo=False)
    assert main(probe[probe.index("--interface") :]) == 0
    assert capsys.readouterr().out == "127.0.0.1, ::1 are free on lo\n"
    announce = advertise_argv("lo", "192.0.2.1", 1, sudo=False)
    assert main(announce[announce.index("--interface") :]) == PROBE_ERROR
    assert "192.0.2.1 is not an IPv6 address" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--wait", "0.1", "192.0.2.22"], "the following arguments are required: --interface"),
        (["--interface", "lo"], "the following arguments are required: address"),
        (["--interface", "lo", "--wait", "soon", "192.0.2.22"],
         "argument --wait: invalid float value: 'soon'"),
        (["--interface", "lo", "--advertise", "1", "2001:db8::1", "2001:db8::2"],
         "--advertise takes one IPv6 address"),
        (["--interface", "lo", "--colour", "192.0.2.22"], "unrecognized arguments: --colour"),
        (["--interface"], "argument --interface: expected one argument"),
    ],
)  # fmt: skip
def test_bad_usage_exits_2_with_argparse_s_words(args: list[str], error: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: floatingip/dad.py")
    assert f"floatingip/dad.py: error: {error}" in result.stderr


def test_an_equals_sign_works_too_and_help_says_what_it_is() -> None:
    require_root()  # a probe opens raw sockets
    assert run("--interface=lo", "--wait=0.01", "127.0.0.1").returncode == 0
    helped = run("--help")
    assert helped.returncode == 0 and "--advertise N" in helped.stdout
