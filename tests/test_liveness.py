"""The agent's watchdog verdict (floatingip.liveness): a worker busy with a backlog of calls that
each finish is alive, however long the backlog; a worker stuck in one call is not."""

from __future__ import annotations

import threading
import time

from floatingip.liveness import Liveness
from floatingip.notify import Notifier
from floatingip.worker import Worker
from tests.conftest import PATIENCE, wait_until

WATCHDOG_USEC = 2_000_000  # the verdict's limit: 2 s without an answer


def _liveness(worker: Worker) -> Liveness:
    return Liveness(Notifier(None, watchdog_usec=WATCHDOG_USEC), worker, lambda: None, "test")


def test_a_backlog_of_calls_that_finish_is_alive_a_stuck_call_is_not() -> None:
    worker = Worker("test-liveness")
    liveness = _liveness(worker)
    release = threading.Event()
    try:
        # A backlog three times the limit long, each call finishing well within it.
        backlog = [worker.submit("slow change", lambda: time.sleep(0.5)) for _ in range(12)]
        liveness._beat()  # the heartbeat waits behind all of them
        verdicts = []
        while not backlog[-1].done():
            verdicts.append(liveness.alive(time.monotonic()))
            time.sleep(0.1)
        assert verdicts and all(verdicts), verdicts

        worker.submit("stuck change", release.wait)
        liveness._beat()
        assert wait_until(lambda: not liveness.alive(time.monotonic()), PATIENCE)
    finally:
        release.set()
        worker.stop(timeout=5)
