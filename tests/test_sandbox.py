"""floatingip.sandbox: validation that needs no root (the network itself: tests/integration)."""

from __future__ import annotations

import pytest

from floatingip import errors
from floatingip.sandbox import Sandbox, SandboxError


@pytest.mark.parametrize("network", ["10.0.0.0/24", "192.168.1.0/24", "8.8.8.0/24", "192.0.0.0/16"])
def test_only_test_net_addresses(network: str) -> None:
    with pytest.raises(SandboxError, match="only uses TEST-NET addresses"):
        Sandbox(network=network)


@pytest.mark.parametrize(
    "network6", ["2001:db9::/64", "fd00::/64", "2001:db8::/31", "192.0.2.0/24"]
)
def test_only_the_ipv6_documentation_prefix(network6: str) -> None:
    with pytest.raises(
        SandboxError, match=r"only uses the IPv6 documentation prefix 2001:db8::/32"
    ):
        Sandbox(network6=network6)


def test_ipv6_addresses_repeat_the_ipv4_digits() -> None:
    sandbox = Sandbox(["db1", "db2"], network6="2001:db8:0:5::/64")
    assert sandbox.addresses6 == {"db1": "2001:db8:0:5::11", "db2": "2001:db8:0:5::12"}
    assert Sandbox(["db1"], network6=None).addresses6 == {}


def test_addresses_and_names() -> None:
    sandbox = Sandbox(["db1", "db2"], network="198.51.100.0/24")
    assert sandbox.addresses == {"db1": "198.51.100.11", "db2": "198.51.100.12"}
    other = Sandbox(["db1", "db2"], network="198.51.100.0/24")
    assert sandbox.namespaces["db1"] != other.namespaces["db1"]
    sandbox.close()  # never started: nothing to do


@pytest.mark.parametrize("hosts", [[], ["db1", "db1"], ["bad name"]])
def test_bad_hosts(hosts: list[str]) -> None:
    with pytest.raises(SandboxError):
        Sandbox(hosts)


def test_sandbox_error_is_in_the_hierarchy_and_still_importable_from_the_sandbox() -> None:
    assert SandboxError is errors.SandboxError
    assert issubclass(SandboxError, errors.FloatingIPError)
    with pytest.raises(errors.FloatingIPError, match="distinct host names"):
        Sandbox(["db1", "db1"])
