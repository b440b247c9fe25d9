"""What a cluster manager reads of a Manager: its datasources, services and policy, what this host
holds, each service's last failure, the repairs, the history and its listeners, and the target a
switch would promote.  Reads only: every change goes through the Manager's own methods.

:class:`ManagerView` is the Manager's base class; the Manager builds the parts it reads.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import MappingProxyType

from floatingip.cluster import ClusterState
from floatingip.datasource import DataSource, PolicyMode
from floatingip.dispatch import Dispatcher
from floatingip.results import Event, History, Listener
from floatingip.service import ServiceDefinition
from floatingip.validation import check_callable, check_name, check_optional_name

__all__ = ["ManagerView"]


class ManagerView:
    """The read side of :class:`floatingip.Manager`."""

    cluster: str
    host: str
    hosts: frozenset[str]
    _services: Mapping[str, ServiceDefinition]
    _state: ClusterState
    _lock: threading.RLock
    _history: History
    _dispatcher: Dispatcher

    @property
    def datasources(self) -> Mapping[str, DataSource]:
        with self._state.lock:
            return MappingProxyType(dict(self._state.datasources))

    def datasource(self, name: str) -> DataSource:
        """One datasource; DataSourceError naming the known ones if there is none of that name."""
        name = check_name(name, "datasource")
        with self._state.lock:
            return self._state.known(name)

    @property
    def services(self) -> Mapping[str, ServiceDefinition]:
        return MappingProxyType(self._services)

    @property
    def policy(self) -> PolicyMode:
        return self._state.policy

    @property
    def held(self) -> Mapping[str, str]:
        """The services held on this host, each with the datasource it was started for."""
        with self._state.lock:
            return MappingProxyType(dict(self._state.holders))

    @property
    def problems(self) -> Mapping[str, str]:
        """Each service's last failure (with its retry state), until it next succeeds."""
        return MappingProxyType(self._dispatcher.retries.problems())

    @property
    def repairs(self) -> int:
        """Drift found and corrected by reconcile."""
        return self._dispatcher.repairs

    @property
    def history(self) -> list[Event]:
        return self._history.events

    @property
    def closed(self) -> bool:
        return self._dispatcher.closed

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` for every event; its exceptions are logged, never raised."""
        self._history.add_listener(check_callable(listener, "listener"))

    def remove_listener(self, listener: Listener) -> None:
        self._history.remove_listener(listener)

    def switch_target(self, to: str | None = None) -> str:
        """The datasource a switch would promote; UsageError if it cannot (see ``switch``)."""
        to = check_optional_name(to, "datasource")
        with self._lock:
            return self._state.switch_target(to, self._state.single_master())
