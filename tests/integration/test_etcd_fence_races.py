"""The etcd fence's races, on a real etcd: never two holders, a held VIP keeps its lock, and no
lock outlives the VIP it guarded while the agent lives.

The fences run in this process, on an event loop of their own, against one etcd member in a
sandbox namespace reached through tests/integration/etcd_proxy.py, which can withhold etcd's
answers (a call that times out after etcd took it).  The interleavings are made by the test:
"a check that read what is held before the drop" is a check whose fence call comes after it.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
from base64 import b64decode
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from floatingip.etcd_client import EtcdPool
from floatingip.etcd_fence import EtcdFence
from floatingip.sandbox import Sandbox
from tests.conftest import wait_until
from tests.integration.etcd_cluster import EtcdCluster
from tests.integration.etcd_proxy import EtcdProxy
from tests.integration.etcd_world import require_etcd

HOLDER = "/floatingip/demo/service/master/holder"
PATIENCE = 60.0  # a loaded 2-core machine


@dataclass
class Bench:
    """One etcd member, the proxy in front of it, and fences for hosts db1 and db2 on one loop."""

    etcd: EtcdCluster
    proxy: EtcdProxy
    loop: asyncio.AbstractEventLoop
    pool: EtcdPool
    fences: dict[str, EtcdFence] = field(default_factory=dict)
    keepers: list[asyncio.Task[None]] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # on_lost's reasons

    def fence(self, host: str, ttl: int = 10) -> EtcdFence:
        """A fence for ``host``, its lease kept, once it holds a live lease.  TTL 10 s: answers
        withheld for a few seconds never cost the lease (dropped after 7 s without a renewal)."""
        made: EtcdFence = self.on_loop(self._make(host, ttl))
        self.fences[host] = made
        assert wait_until(lambda: made.keeper.current()[0] is not None, PATIENCE)
        return made

    async def _make(self, host: str, ttl: int) -> EtcdFence:
        fence = EtcdFence(
            self.pool, "demo", host, loop=self.loop, ttl=ttl, on_lost=self.lost.append
        )
        self.keepers.append(asyncio.ensure_future(fence.run()))
        return fence

    def on_loop(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout=PATIENCE)

    def holder(self) -> tuple[dict[str, Any], int] | None:
        """The holder key as etcd has it now (etcdctl in the member's namespace): its value and
        lease, or None when there is none."""
        result = self.etcd.etcdctl("etcd1", "get", HOLDER, "--write-out=json")
        assert result.returncode == 0, result.stderr
        kvs = json.loads(result.stdout).get("kvs", [])
        if not kvs:
            return None
        return json.loads(b64decode(kvs[0]["value"])), int(kvs[0].get("lease", 0))

    def lease(self, host: str) -> int:
        lease = self.fences[host].keeper.current()[0]
        assert lease is not None
        return lease


@contextmanager
def bench() -> Iterator[Bench]:
    require_etcd()
    directory = Path(tempfile.mkdtemp(prefix="floatingip-fence-"))
    with Sandbox(["etcd1"], network="192.0.2.0/24") as sandbox:
        etcd = EtcdCluster(sandbox, ["etcd1"], directory / "etcd")
        proxy = None
        loop = asyncio.new_event_loop()
        runner = threading.Thread(target=loop.run_forever, name="fence-loop", daemon=True)
        runner.start()
        try:
            etcd.start()
            proxy = EtcdProxy(sandbox.namespaces["etcd1"], sandbox.addresses["etcd1"], directory)
            pool = asyncio.run_coroutine_threadsafe(_pool(proxy), loop).result(PATIENCE)
            made = Bench(etcd, proxy, loop, pool)
            try:
                yield made
            finally:
                if proxy is not None:
                    proxy.resume()
                for fence in made.fences.values():
                    made.on_loop(fence.close())
                made.on_loop(_stop(made.keepers))
                made.on_loop(pool.close())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            runner.join(timeout=10)
            if not runner.is_alive():
                loop.close()
            if proxy is not None:
                proxy.close()
            etcd.close()


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _pool(proxy: EtcdProxy) -> EtcdPool:
    return EtcdPool([proxy.endpoint], timeout=2.0)


# -- a timed-out acquire ---------------------------------------------------------------------


def test_an_acquire_that_timed_out_after_etcd_took_it_leaves_no_lock_behind() -> None:
    """etcd creates the lock on db1's live lease, but its answer never comes: db1 refuses the
    start (it cannot tell).  The lock used to stay while db1's agent lived: db2 refused, the VIP
    up nowhere.  The fence now deletes exactly what that attempt wrote, and db2 takes it."""
    with bench() as b:
        db1, db2 = b.fence("db1"), b.fence("db2")
        b.proxy.hold()
        answer = db1.acquire("master", host="db1", datasource="db1")
        assert not answer.granted, answer
        committed = b.holder()  # etcd took it: on db1's lease
        assert committed is not None and committed[0]["host"] == "db1", committed
        assert committed[1] == b.lease("db1")
        b.proxy.resume()
        assert wait_until(lambda: b.holder() is None, PATIENCE), b.holder()
        assert db2.acquire("master", host="db2", datasource="db2").granted


def test_a_grant_that_comes_after_the_caller_gave_up_leaves_no_lock_behind() -> None:
    """etcd answers the lock request and grants it, but the coroutine goes on only after the
    caller's bound expired (it may need up to ~4 s: a pending release, the request, a move onto
    the current lease): the caller refused the start, and cancelling the finished coroutine did
    nothing.  The lock used to stay on db1's live lease with no VIP: db2 refused.  Now the
    caller and the coroutine agree: a grant the caller did not receive is deleted."""
    with bench() as b:
        db1, db2 = b.fence("db1"), b.fence("db2")
        gave_up = threading.Event()
        take = db1._take

        async def late(service: str, value: bytes, lease: int) -> Any:
            answer = await take(service, value, lease)
            assert answer.granted, answer
            gave_up.wait(PATIENCE)  # holds the loop until the caller has refused
            return answer

        refused_and_no_lock_left(b, db1, db2, late, gave_up)


def refused_and_no_lock_left(
    b: Bench, db1: EtcdFence, db2: EtcdFence, late: Callable[..., Any], gave_up: threading.Event
) -> None:
    """db1's start, its lock request answered through ``late`` (which waits for ``gave_up``),
    is refused; then no lock is left behind, and db2's start is granted."""
    take = db1._take
    setattr(db1, "_take", late)  # noqa: B010  (the interleaving: no mock of etcd)
    try:
        answer = db1.acquire("master", host="db1", datasource="db1")
    finally:
        gave_up.set()
    assert not answer.granted, answer
    setattr(db1, "_take", take)  # noqa: B010
    assert wait_until(lambda: b.holder() is None, PATIENCE), b.holder()
    assert db2.acquire("master", host="db2", datasource="db2").granted


def test_a_grant_handed_over_too_late_gives_back_the_release_it_voided() -> None:
    """The stop's release got no answer (pending), then a start is granted (the lock is still
    db1's) but its answer reaches the caller only after the caller's bound: the coroutine had
    finished, so the caller's cancel stopped nothing.  The grant had voided the pending
    release; the caller now puts it back, and the lock goes."""
    with bench() as b:
        db1, db2 = b.fence("db1"), b.fence("db2")
        assert db1.acquire("master", host="db1", datasource="db1").granted
        b.proxy.hold()
        db1.release("master", host="db1")  # no answer: pending
        b.proxy.resume()
        assert b.holder() is not None and db1._pending
        take = db1._take
        gave_up = threading.Event()

        async def late(service: str, value: bytes, lease: int) -> Any:
            answer = await take(service, value, lease)
            # runs before the task's result is handed to the caller: held until it gave up
            asyncio.get_running_loop().call_soon(gave_up.wait, PATIENCE)
            return answer

        refused_and_no_lock_left(b, db1, db2, late, gave_up)


def test_a_timed_out_acquire_of_a_lock_already_held_leaves_it_alone() -> None:
    """A held VIP keeps its lock: a second start (a restart) whose answer never came does not
    make the fence delete the lock the first one took."""
    with bench() as b:
        db1 = b.fence("db1")
        assert db1.acquire("master", host="db1", datasource="db1").granted
        taken = b.holder()
        b.proxy.hold()
        assert not db1.acquire("master", host="db1", datasource="db1").granted
        b.proxy.resume()
        assert wait_until(lambda: not db1._pending, PATIENCE), db1._pending  # cleaned up
        assert b.holder() == taken


def test_a_start_after_a_timed_out_acquire_is_granted_and_keeps_its_lock() -> None:
    """The next start (the manager retries) is granted, whether the clean-up of the attempt
    that timed out ran before it or not, and its lock stays."""
    with bench() as b:
        db1 = b.fence("db1")
        b.proxy.hold()
        assert not db1.acquire("master", host="db1", datasource="db1").granted
        b.proxy.resume()
        assert db1.acquire("master", host="db1", datasource="db1").granted
        assert wait_until(lambda: not db1._pending, PATIENCE), db1._pending
        held = b.holder()
        assert held is not None and held[0]["host"] == "db1" and held[1] == b.lease("db1")


# -- the check of held VIPs ---------------------------------------------------------------
# Against a stop it runs under the service's lock (tests/test_etcd_check.py); the drop after a
# lost lease takes no lock, and the fence sees to it.


def test_a_check_after_the_lease_was_lost_does_not_move_the_lock_onto_the_new_one() -> None:
    """The lease was lost (the VIPs dropped); a check that read "held" before the drop used to
    move the old lease's lock onto the new lease, where it stayed."""
    with bench() as b:
        db1 = b.fence("db1", ttl=3)  # dropped after 2 s without a renewal
        assert db1.acquire("master", host="db1", datasource="db1").granted
        old = b.lease("db1")
        b.proxy.hold()
        assert wait_until(lambda: b.lost, PATIENCE)
        b.proxy.resume()
        assert wait_until(lambda: db1.keeper.current()[0] not in (None, old), PATIENCE)
        assert db1.held_elsewhere("master") is None
        assert wait_until(lambda: b.holder() is None, PATIENCE), b.holder()


def test_a_held_vip_keeps_its_lock_through_the_check() -> None:
    """Never weakened: a VIP found up at start (this agent never took its lock) gets it from
    the check; so does one back after its release (found by reconcile: db2 would otherwise be
    told it was vacated and skip its duplicate address check), one started again after a lost
    lease whose lock was deleted behind the fence's back; and a lock db2 holds is reported,
    not taken."""
    with bench() as b:
        db1, db2 = b.fence("db1", ttl=3), b.fence("db2")
        assert db1.held_elsewhere("master") is None  # found at start
        held = b.holder()
        assert held is not None and held[0]["host"] == "db1" and held[1] == b.lease("db1")
        db1.release("master", host="db1")
        assert b.holder() is None
        assert db1.held_elsewhere("master") is None  # back after its release
        held = b.holder()
        assert held is not None and held[0]["host"] == "db1" and held[1] == b.lease("db1")
        assert not db2.acquire("master", host="db2", datasource="db2").granted
        old = b.lease("db1")
        b.proxy.hold()
        assert wait_until(lambda: b.lost, PATIENCE)
        b.proxy.resume()
        assert wait_until(lambda: db1.keeper.current()[0] not in (None, old), PATIENCE)
        assert wait_until(lambda: b.holder() is None, PATIENCE)  # died with the old lease
        assert db1.acquire("master", host="db1", datasource="db1").granted
        assert b.etcd.etcdctl("etcd1", "del", HOLDER).returncode == 0
        assert db1.held_elsewhere("master") is None
        held = b.holder()
        assert held is not None and held[1] == b.lease("db1")
        db1.release("master", host="db1")
        assert db2.acquire("master", host="db2", datasource="db2").granted
        assert db1.held_elsewhere("master") == "db2"
        held = b.holder()
        assert held is not None and held[0]["host"] == "db2"
