"""The Manager's life before and around its changes: start-up (STARTING until reconcile knows what
is held, then RUNNING), abandoning a start that failed, and the gate every change passes (the
manager is open, or ManagerClosedError).  Closing is floatingip.failsafe's."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from floatingip.assembly import Arguments
from floatingip.datasource import State
from floatingip.dispatch import Dispatcher
from floatingip.engine import Engine
from floatingip.errors import ManagerClosedError
from floatingip.reconcile import warn_unprobeable
from floatingip.supervisor import Supervisor

if TYPE_CHECKING:
    from floatingip.manager import Manager

__all__ = ["OpenGate", "abandon", "start_up"]

logger = logging.getLogger(__name__)


def start_up(
    manager: Manager,
    dispatcher: Dispatcher,
    lock: threading.RLock,
    given: Arguments,
    reconcile_at_start: bool,
) -> None:
    """Declare the datasources, reconcile (if asked), then let the rules take services.
    ``lock``: the manager's."""
    dispatcher.begin()  # STARTING: nothing is taken until reconcile knows what is held
    for datasource in given.declared:
        manager.add_datasource(
            datasource.name,
            role=given.roles.get(datasource.name, datasource.role),
            host=datasource.host,
            state=given.states.get(datasource.name, State.OFFLINE),
        )
    warn_unprobeable(dispatcher)
    if reconcile_at_start:
        manager.reconcile()
    with lock:
        dispatcher.enter_running()
    logger.info(
        "manager for cluster %s on host %s: services %s, rulesets %s",
        manager.cluster,
        manager.host,
        ", ".join(given.services) or "none",
        ", ".join(dispatcher.engine.ruleset_names),
    )


def abandon(
    manager: Manager, dispatcher: Dispatcher, supervisor: Supervisor, engine: Engine
) -> None:
    """Construction failed: close (the failsafe releases what start-up may have taken: no
    caller will ever close this manager) and leave nothing running."""
    try:
        manager.close()
    except BaseException:
        logger.exception("closing manager of cluster %s after a failed start", manager.cluster)
    finally:
        dispatcher.closed = True
        supervisor.stop(timeout=0)
        engine.close()


class OpenGate:
    """``with manager._open:`` holds the manager's lock for a manager that is open, and raises
    ManagerClosedError otherwise: checked before the lock too, which a wedged change may hold
    after close().  A class, not a generator: it is on the path of every change."""

    def __init__(self, lock: threading.RLock, dispatcher: Dispatcher, cluster: str) -> None:
        self._lock = lock
        self._dispatcher = dispatcher
        self._cluster = cluster

    def __enter__(self) -> None:
        dispatcher = self._dispatcher  # its flag itself: no property on this path
        if dispatcher.closed:
            raise self.closed_error()
        self._lock.acquire()
        if dispatcher.closed:
            self._lock.release()
            raise self.closed_error()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def closed_error(self) -> ManagerClosedError:
        return ManagerClosedError(f"the manager of cluster {self._cluster!r} is closed")
