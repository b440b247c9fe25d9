"""The duplicate address probe (floatingip/dad.py) on real interfaces: its answer, and when it
gives it.  An address another host answers for is refused as soon as that host answers, not at
the end of the listening window: a hook that waits for the old holder to release the VIP
(Patroni runs both callbacks at once) asks again at once instead of a window later."""

from __future__ import annotations

from floatingip.dad import FREE, IN_USE, probe_argv
from floatingip.sandbox import Sandbox

VIP4 = "192.0.2.22"
VIP6 = "2001:db8::22"
WINDOW = 3600.0  # listening longer than the command's timeout: only an early answer passes
PATIENCE = 30.0


def probe(sandbox: Sandbox, *addresses: str, wait: float = WINDOW) -> tuple[int | None, str]:
    argv = probe_argv("eth0", addresses, wait, sudo=False)
    result = sandbox.executor("db1").run(argv, timeout=PATIENCE, check=False)
    assert not result.timed_out, f"the probe still listened after {PATIENCE:g} s"
    return result.exit_code, result.stdout


def test_a_held_address_is_refused_as_soon_as_its_holder_answers(sandbox: Sandbox) -> None:
    sandbox.run("db2", ["ip", "addr", "add", f"{VIP4}/24", "dev", "eth0"])
    code, said = probe(sandbox, VIP4)
    assert code == IN_USE and "in use" in said


def test_a_dual_stack_vip_held_whole_is_refused_at_once(sandbox: Sandbox) -> None:
    sandbox.run("db2", ["ip", "addr", "add", f"{VIP4}/24", "dev", "eth0"])
    sandbox.run("db2", ["ip", "-6", "addr", "add", f"{VIP6}/64", "dev", "eth0", "nodad"])
    code, said = probe(sandbox, VIP4, VIP6)
    assert code == IN_USE and VIP4 in said and VIP6 in said


def test_half_a_vip_held_is_refused_and_the_free_half_listened_for(sandbox: Sandbox) -> None:
    """The other address is listened for to the end of the window (it may answer late)."""
    sandbox.run("db2", ["ip", "-6", "addr", "add", f"{VIP6}/64", "dev", "eth0", "nodad"])
    code, said = probe(sandbox, VIP4, VIP6, wait=0.5)
    assert code == IN_USE and VIP6 in said and VIP4 not in said


def test_a_free_address_is_free(sandbox: Sandbox) -> None:
    assert probe(sandbox, VIP4, VIP6, wait=0.3)[0] == FREE
