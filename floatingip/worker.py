"""The agent's worker: one thread that runs the Manager's calls in the order they are submitted
(the order etcd gave the changes), each logged if it fails, none stopping the thread."""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from floatingip.errors import FloatingIPError

__all__ = ["Worker"]

logger = logging.getLogger("floatingip.agent")  # its records are the agent's, as before

T = TypeVar("T")


class Worker:
    """One thread that runs the Manager's calls in the order they are submitted."""

    def __init__(self, name: str) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self.progressed = time.monotonic()  # when a call last started or ended
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, what: str, call: Callable[[], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((what, call, future))
        return future

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            what, call, future = item
            if not future.set_running_or_notify_cancel():
                continue
            self.progressed = time.monotonic()
            try:
                future.set_result(call())
            except BaseException as exc:  # recorded and logged, the worker carries on
                if isinstance(exc, FloatingIPError):
                    logger.error("%s: %s", what, exc)
                else:
                    logger.exception("%s failed", what)
                future.set_exception(exc)
            finally:
                self.progressed = time.monotonic()

    def stop(self, timeout: float) -> None:
        self._queue.put(None)
        self._thread.join(timeout)
