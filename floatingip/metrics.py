"""Prometheus metrics (``--metrics ADDRESS:PORT``; the optional ``floatingip[metrics]`` extra).

A Manager's metrics come from its events (one listener, :class:`ManagerMetrics`): a command's
duration and failure, a retry, a repair; what is held, and since when, is read from the Manager
when an event may have changed it and at each scrape.  A quiet change costs the listener one
dictionary lookup.  The agent adds its lease, etcd's round-trip time and the watch lag
(:class:`AgentMetrics`).  prometheus_client is imported only here, when metrics are asked for.
README "Metrics" lists the names.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from floatingip.decision import duration, failure_reason
from floatingip.errors import UsageError
from floatingip.results import Event
from floatingip.vocabulary import Action, EventKind

if TYPE_CHECKING:
    from floatingip.view import ManagerView

__all__ = ["DEFAULT_HOST", "Exporter", "ManagerMetrics", "parse_address", "prometheus"]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"  # a bare port: this host only
# Seconds: a VIP command takes milliseconds; a sudo or a DAD probe some tenths; a hang its timeout.
COMMAND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def prometheus() -> Any:
    """The prometheus_client module, or a UsageError saying how to install it."""
    try:
        import prometheus_client
        import prometheus_client.metrics_core
    except ImportError as exc:
        raise UsageError(
            f"--metrics needs the Prometheus client ({exc}): pip install 'floatingip[metrics]'"
        ) from None
    return prometheus_client


def parse_address(text: str, option: str = "--metrics") -> tuple[str, int]:
    """``PORT`` (on 127.0.0.1), ``HOST:PORT`` or ``[IPv6]:PORT``."""
    host, separator, port = text.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    host = DEFAULT_HOST if not separator else host[1:-1] if bracketed else host
    if (
        not host
        or (":" in host and not bracketed)
        or not port.isdigit()
        or not 0 < int(port) < 65536
    ):
        raise UsageError(f"{option} takes PORT or ADDRESS:PORT (port 1-65535), not {text!r}")
    return host, int(port)


class Exporter:
    """An HTTP endpoint serving this process's floatingip metrics at ``/metrics``, in a daemon
    thread, listening from the start (a port in use fails before anything else is done);
    :meth:`follow` adds a Manager's metrics.  ``Exporter(("127.0.0.1", 9100)).follow(manager)``
    """

    def __init__(self, address: tuple[str, int]) -> None:
        host, port = address
        client = prometheus()
        self.registry = client.CollectorRegistry()
        client.ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, RSS, fds
        self.manager: ManagerMetrics | None = None
        try:
            self._server, self._thread = prometheus().start_http_server(
                port, addr=host, registry=self.registry
            )
        except OSError as exc:
            raise UsageError(f"--metrics {host}:{port}: cannot listen there: {exc}") from None
        self.port = int(self._server.server_port)
        logger.info("metrics on http://%s:%d/metrics", host, self.port)

    def follow(self, manager: ManagerView) -> ManagerMetrics:
        self.manager = ManagerMetrics(self.registry)
        self.manager.attach(manager)
        return self.manager

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


_QUIET = EventKind.DATASOURCE


@dataclass
class _Held:
    since: float  # unix time it was first seen held here


class ManagerMetrics:
    """The metrics of one Manager in ``registry``; :meth:`attach` starts feeding them."""

    def __init__(self, registry: Any) -> None:
        client = prometheus()
        self.registry = registry
        self._manager: ManagerView | None = None
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        per = {"registry": registry}
        self.transitions = client.Counter(
            "floatingip_transitions", "VIPs taken (up) and released (down) on this host",
            ["service", "direction"], **per,
        )  # fmt: skip
        self.durations = client.Histogram(
            "floatingip_command_duration_seconds",
            "Time each service action's commands ran (probe, command, check)",
            ["service", "action"], buckets=COMMAND_BUCKETS, **per,
        )  # fmt: skip
        self.failures = client.Counter(
            "floatingip_command_failures", "Service actions that failed, by reason",
            ["service", "action", "reason"], **per,
        )  # fmt: skip
        self.retries = client.Counter(
            "floatingip_retries", "Retries of failed actions", ["service"], **per
        )
        self.repairs = client.Counter(
            "floatingip_repairs", "Drift found and repaired by reconcile", ["service"], **per
        )
        registry.register(_HeldCollector(self, client))
        self._handlers: dict[EventKind, Callable[[Event], object]] = {
            EventKind.COMMAND: self._command,
            EventKind.RETRY: lambda event: self.retries.labels(event.service or "-").inc(),
            EventKind.DRIFT: self._drift,
            EventKind.WARNING: lambda event: self.sync(event.time),  # revoke, drop_all
            EventKind.MANAGER: lambda event: self.sync(event.time),  # closed
        }

    def attach(self, manager: ManagerView) -> None:
        """Follow ``manager``: each service's series start at 0; its history so far is counted
        (a VIP taken while it started: one transition up, held since that start)."""
        for service in manager.services:
            for direction in ("up", "down"):
                self.transitions.labels(service, direction)
            self.retries.labels(service)
            self.repairs.labels(service)
        history = manager.history
        for event in history:  # durations, failures, retries, repairs (no manager yet: no sync)
            self.on_event(event)
        taken = {
            event.service: event.time
            for event in history
            if event.kind is EventKind.COMMAND and event.ok and event.outcome is not None
            and event.outcome.action == Action.START
        }  # fmt: skip
        now = time.time()
        with self._lock:
            self._manager = manager
            self._held = {name: _Held(taken.get(name, now)) for name in manager.held}
            for name in self._held:
                self.transitions.labels(name, "up").inc()
        manager.add_listener(self.on_event)

    def on_event(self, event: Event) -> None:
        kind = event.kind
        if kind is _QUIET:  # every change records one: an identity test, no hashing
            return
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(event)

    def _command(self, event: Event) -> None:
        outcome = event.outcome
        if outcome is None:
            return
        action = str(outcome.action)
        if outcome.steps or outcome.result is not None:
            seconds = duration(outcome.steps, outcome.result)
            self.durations.labels(outcome.service, action).observe(seconds)
        if not outcome.ok:
            reason = failure_reason(outcome.error)
            self.failures.labels(outcome.service, action, reason).inc()
        self.sync(event.time)

    def _drift(self, event: Event) -> None:
        self.repairs.labels(event.service or "-").inc()
        self.sync(event.time)

    def sync(self, when: float | None = None) -> dict[str, _Held]:
        """Read what the Manager holds; count each change as a transition at ``when``."""
        manager = self._manager
        if manager is None:
            return {}
        held = manager.held
        when = time.time() if when is None else when
        with self._lock:
            for name in held:
                if name not in self._held:
                    self._held[name] = _Held(when)
                    self.transitions.labels(name, "up").inc()
            for name in [name for name in self._held if name not in held]:
                del self._held[name]
                self.transitions.labels(name, "down").inc()
            return dict(self._held)


class _HeldCollector:
    """``floatingip_service_held`` and ``floatingip_service_held_since_seconds``, read at scrape."""

    def __init__(self, metrics: ManagerMetrics, client: Any) -> None:
        self._metrics = metrics
        self._family = client.metrics_core.GaugeMetricFamily

    def collect(self) -> Iterator[Any]:
        held = self._metrics.sync()
        manager = self._metrics._manager
        services = sorted(manager.services) if manager is not None else []
        up = self._family("floatingip_service_held", "1 while this host holds the service's VIP",
                          labels=["service"])  # fmt: skip
        since = self._family(
            "floatingip_service_held_since_seconds",
            "Unix time this host took the VIP (absent while not held)", labels=["service"],
        )  # fmt: skip
        for name in services:
            up.add_metric([name], 1.0 if name in held else 0.0)
            if name in held:
                since.add_metric([name], held[name].since)
        yield up
        yield since

    def describe(self) -> list[Any]:
        return []  # unchecked: the series are known only at scrape
