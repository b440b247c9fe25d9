"""floatingip.privilege: the mode from /proc/self/status's capability sets, and what
capability mode lacks, said by name."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from floatingip import privilege
from floatingip.errors import UsageError
from floatingip.privilege import Capabilities, Privilege
from floatingip.service import load_services
from floatingip.testing import write_cluster_home
from tests.conftest import require_root
from tests.integration.conftest import call_as

BOTH = (1 << 12) | (1 << 13)


@pytest.fixture(autouse=True)
def restore_mode() -> Iterator[None]:
    yield
    privilege.configure(Privilege.AUTO)


def test_status_fields_are_read_as_hex_masks() -> None:
    text = "Name:\tx\nCapEff:\t0000000000003000\nCapAmb:\t0000000000001000\nNoNewPrivs:\t1\n"
    caps = privilege.parse_status(text)
    assert caps == Capabilities(effective=BOTH, ambient=1 << 12, no_new_privs=True)
    assert privilege.missing_capabilities(caps) == [
        "CAP_NET_RAW is not in the ambient set (the commands would not inherit it)"
    ]
    assert privilege.missing_capabilities(Capabilities(BOTH, BOTH)) == []
    assert privilege.missing_capabilities(Capabilities(0, 0)) == [
        "CAP_NET_ADMIN is not in the effective set",
        "CAP_NET_RAW is not in the effective set",
    ]


def test_this_process_reads_its_own_sets() -> None:
    caps = privilege.read_capabilities()
    expected = int(Path("/proc/self/status").read_text().split("CapEff:")[1].split()[0], 16)
    assert caps.effective == expected


def test_root_needs_neither_whatever_is_asked() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    for mode in (Privilege.SUDO, Privilege.CAPABILITIES, Privilege.AUTO):
        privilege.configure(mode)
        assert privilege.current() is Privilege.ROOT and not privilege.use_sudo()
        privilege.require()  # root has them


def test_root_is_not_a_mode_one_asks_for() -> None:
    with pytest.raises(ValueError, match="not asked for"):
        privilege.configure("root")
    with pytest.raises(ValueError):
        privilege.configure("sometimes")


def test_the_vip_commands_follow_the_mode_unless_the_service_file_says(tmp_path: Path) -> None:
    require_root()  # to become an account that is not root
    vip = "vip.address=192.0.2.22/24\nvip.interface=eth0\n"
    services_text = {
        "master": f"name=master\n{vip}",
        "forced": f"name=forced\n{vip}vip.sudo=true\n",
    }
    home = write_cluster_home(tmp_path, services=services_text, datasources={})
    services = load_services(home, "demo")

    def as_nobody() -> dict[str, object]:
        seen: dict[str, object] = {}
        for mode in (Privilege.SUDO, Privilege.CAPABILITIES, Privilege.AUTO):
            privilege.configure(mode)
            seen[mode.value] = [services[name].argv("start")[0] for name in ("master", "forced")]
        privilege.configure(Privilege.CAPABILITIES)
        try:
            privilege.require()
        except UsageError as exc:
            seen["refused"] = str(exc)
        return seen

    seen = call_as("nobody", as_nobody)
    assert seen["sudo"] == ["sudo", "sudo"]
    assert seen["capabilities"] == ["ip", "sudo"]  # vip.sudo=true still means sudo
    assert seen["auto"] == ["sudo", "sudo"]  # nobody has no capabilities
    assert "CAP_NET_ADMIN is not in the effective set" in str(seen["refused"])
