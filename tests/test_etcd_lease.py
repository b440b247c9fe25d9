"""The agent's lease keeper without etcd: the shortest TTL that leaves room for a start, and
the drop once renewals stop (a pool that grants once, then never answers)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from floatingip.cli import main
from floatingip.errors import UsageError
from floatingip.etcd_client import EtcdError, EtcdPool
from floatingip.etcd_fence import EtcdFence
from floatingip.etcd_lease import MIN_TTL, LeaseKeeper
from tests.conftest import wait_until


class GrantsOnce:
    """Grants one lease, then every call fails as an unreachable etcd does."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def call(self, what: str, request: Any, *, timeout: float) -> Any:
        self.calls.append(what)
        if what == "lease grant" and self.calls.count(what) == 1:
            return SimpleNamespace(id=0x51, ttl=MIN_TTL)
        raise EtcdError(f"{what}: etcd unreachable")


class Renews:
    """Grants a lease, then renews it whenever asked."""

    async def call(self, what: str, request: Any, *, timeout: float) -> Any:
        if what == "lease grant":
            return SimpleNamespace(id=0x52, ttl=MIN_TTL)
        return SimpleNamespace(TTL=MIN_TTL)


def test_a_start_short_of_the_margin_waits_for_the_next_renewal() -> None:
    """A renewal a little late (a loaded machine) used to refuse every start in between ("no
    live etcd lease"); the fence now gives the lease up to a period to be renewed."""
    keeper = LeaseKeeper(Renews(), ttl=MIN_TTL)  # type: ignore[arg-type]
    asyncio.run(keeper.renew())
    assert wait_until(lambda: keeper.current()[1] < keeper.margin)  # no renewal for a while
    assert keeper.current()[1] < keeper.margin  # without waiting: short
    answers: list[tuple[int | None, float]] = []
    waiting = threading.Thread(target=lambda: answers.append(keeper.current(wait=30)))
    waiting.start()
    asyncio.run(keeper.renew())
    waiting.join(timeout=60)
    ((lease, remaining),) = answers
    assert lease == 0x52 and remaining >= keeper.margin


def test_the_watchdog_naps_while_there_is_no_lease() -> None:
    """With no lease (at start, etcd unreachable) the deadline is 'now' forever: the watchdog
    used to wake every millisecond, about 3% of a core exactly when etcd is in trouble."""

    class Counting(LeaseKeeper):
        checks = 0

        def _remaining(self) -> float:
            Counting.checks += 1
            return super()._remaining()

    keeper = Counting(GrantsOnce(), ttl=MIN_TTL)  # type: ignore[arg-type]
    keeper.start()
    try:
        time.sleep(1.0)  # not a bound on anything: a window in which to count wake-ups
        assert Counting.checks <= 10, Counting.checks
    finally:
        asyncio.run(keeper.revoke())


def test_held_elsewhere_reports_only_what_etcd_said_now() -> None:
    """The other holder seen by an earlier refusal used to be kept: once this host had taken
    the lock, a later refusal for another reason (no live lease: a renewal late on a loaded
    machine) reported that stale holder, and the agent dropped the VIP from the right host."""
    loop = asyncio.new_event_loop()
    try:
        fence = EtcdFence(EtcdPool.__new__(EtcdPool), "demo", "db1", loop=loop, ttl=MIN_TTL)
        fence._others["master"] = "db2"  # seen holding it, before this host took the lock
        assert fence.held_elsewhere("master") is None  # no lease now: etcd cannot tell
    finally:
        loop.close()


class Expires:
    """Grants a lease; etcd then says it has expired (a renewal answered with TTL 0)."""

    async def call(self, what: str, request: Any, *, timeout: float) -> Any:
        if what == "lease grant":
            return SimpleNamespace(id=0x53, ttl=MIN_TTL)
        return SimpleNamespace(TTL=0)


def test_dropping_after_etcd_says_expired_does_not_stall_the_event_loop() -> None:
    """on_lost runs the stop commands: run on the loop, it used to stall the fence's calls and
    the watch for as long as they took."""
    dropping, done = threading.Event(), threading.Event()

    def slow_drop(reason: str) -> None:
        dropping.set()
        done.wait(60)  # a stop command that takes its time

    keeper = LeaseKeeper(Expires(), ttl=MIN_TTL, on_lost=slow_drop)  # type: ignore[arg-type]

    async def scenario() -> bool:
        await keeper.renew()  # granted
        renewing = asyncio.ensure_future(keeper.renew())  # expired: the drop starts
        while not dropping.is_set():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)  # the loop still runs while the drop does
        ran = not renewing.done()
        done.set()
        await renewing
        return ran

    assert asyncio.run(scenario())
    assert keeper.losses == 1 and keeper.current() == (None, 0.0)


def test_a_ttl_with_no_room_for_a_start_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--ttl 2 used to be accepted, and then every start was refused ("no live etcd lease"):
    a start needs the margin (1 s) left of TTL - margin."""
    with pytest.raises(UsageError, match=f"at least {MIN_TTL}"):
        LeaseKeeper(EtcdPool.__new__(EtcdPool), ttl=MIN_TTL - 1)
    status = main(
        ["agent", "--cluster-home", str(tmp_path), "--cluster", "c", "--host", "db1",
         "--etcd", "http://192.0.2.1:2379", "--ttl", str(MIN_TTL - 1)]
    )  # fmt: skip
    assert status != 0
    assert f"--ttl must be whole seconds in {MIN_TTL}-3600" in capsys.readouterr().err


def test_renewals_that_stop_drop_the_vips_once_and_forget_the_lease() -> None:
    lost: list[str] = []
    pool = GrantsOnce()
    keeper = LeaseKeeper(pool, ttl=MIN_TTL, on_lost=lost.append)  # type: ignore[arg-type]
    asyncio.run(keeper.renew())
    lease, remaining = keeper.current()
    assert lease == 0x51 and remaining > keeper.margin  # a start may be granted now
    keeper.start()
    try:
        for _ in range(3):
            asyncio.run(keeper.renew())  # fails: counted, not raised
        assert wait_until(lambda: lost)
        assert keeper.current() == (None, 0.0)
        assert len(lost) == 1 and "no lease renewal" in lost[0]
        assert keeper.losses == 1
    finally:
        asyncio.run(keeper.revoke())
