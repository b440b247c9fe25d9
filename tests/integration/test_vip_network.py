"""Built-in VIP services on real interfaces: idempotent, verified, announced, exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from floatingip import Manager, load_service
from floatingip.actions import perform
from floatingip.sandbox import Sandbox
from tests.conftest import PATIENCE, require_program, write_service


def vip_service(service_dir: Path, *, backend: str = "ip", address: str = "192.0.2.22/24",
                interface: str = "eth0", arp: int = 3) -> Path:  # fmt: skip
    return write_service(
        service_dir,
        "master.properties",
        f"name=master\nvip.address={address}\nvip.interface={interface}\nvip.label={interface}:0\n"
        f"vip.backend={backend}\nvip.arp.count={arp}\n",
    )


@pytest.mark.parametrize("backend", ["ip", "ifconfig"])
def test_start_stop_are_idempotent_and_verified(
    sandbox: Sandbox, service_dir: Path, backend: str
) -> None:
    if backend == "ifconfig":
        require_program("/sbin/ifconfig", package="net-tools")
    service = load_service(vip_service(service_dir, backend=backend, arp=0))
    db1 = sandbox.executor("db1")
    started = perform(service, "start", db1)
    assert started.ok and started.held is True, started.error
    assert "192.0.2.22" in sandbox.addresses_on("db1")
    again = perform(service, "start", db1)
    assert again.ok and again.notes == ("192.0.2.22/24 already present on eth0",)
    assert sandbox.addresses_on("db1") == ["192.0.2.11", "192.0.2.22"]
    status = perform(service, "status", db1)
    assert status.held is True and status.notes == ("192.0.2.22/24 is held on eth0",)
    stopped = perform(service, "stop", db1)
    assert stopped.ok and stopped.held is False
    assert sandbox.addresses_on("db1") == ["192.0.2.11"]
    stopped_again = perform(service, "stop", db1)
    assert stopped_again.ok and stopped_again.notes == ("192.0.2.22/24 already absent on eth0",)


def test_status_matches_the_exact_address(sandbox: Sandbox, service_dir: Path) -> None:
    # db1 is 192.0.2.11: a VIP of 192.0.2.1 is a prefix of it as text, and must not match
    service = load_service(vip_service(service_dir, address="192.0.2.1/24"))
    assert perform(service, "status", sandbox.executor("db1")).held is False


def test_a_missing_interface_is_a_clear_error(sandbox: Sandbox, service_dir: Path) -> None:
    service = load_service(vip_service(service_dir, interface="eth9"))
    result = perform(service, "start", sandbox.executor("db1"))
    assert not result.ok
    assert "cannot read the addresses of interface 'eth9'" in str(result.error)
    assert "does not exist" in str(result.error)


def test_gratuitous_arp_is_sent_after_start(
    sandbox: Sandbox, demo_home: Path, service_dir: Path
) -> None:
    require_program("arping", package="iputils-arping")
    vip_service(service_dir, arp=1)
    with Manager.from_cluster_home(
        demo_home, "demo", executors={"db1": sandbox.executor("db1")}
    ) as manager:
        result = manager.update_datasource("db1", state="ONLINE")
        assert result.ok, result.errors
        assert manager.wait_for_announcements(timeout=PATIENCE)
        announced = [event for event in manager.history if event.kind == "announce"]
        assert len(announced) == 1
        assert "arping -U -c 1 -I eth0 192.0.2.22" in announced[0].message


def test_missing_arping_is_a_warning_not_a_failure(
    sandbox: Sandbox, demo_home: Path, service_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vip_service(service_dir, arp=1)
    monkeypatch.setenv("PATH", "/usr/sbin:/sbin")  # ip is here; arping (in /usr/bin) is not
    with Manager.from_cluster_home(
        demo_home, "demo", executors={"db1": sandbox.executor("db1")}
    ) as manager:
        result = manager.update_datasource("db1", state="ONLINE")
        assert result.ok and manager.held == {"master": "db1"}
        assert manager.wait_for_announcements(timeout=PATIENCE)
        (warning,) = [event for event in manager.history if event.kind == "warning"]
        assert "gratuitous ARP not sent: command not found: 'arping'" in warning.message
    assert sandbox.addresses_on("db1") == ["192.0.2.11"]
