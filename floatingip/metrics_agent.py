"""The agent's own metrics (``floatingip agent --metrics``): its lease, etcd's round-trip time
per request, and the watch lag; beside its Manager's (floatingip.metrics).  The lease is read at
each scrape; each etcd request is timed by :class:`MeteredPool`; the lag is measured by the
agent (:meth:`AgentMetrics.watch_lag`)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from floatingip.etcd_client import Endpoint, EtcdPool
from floatingip.metrics import Exporter, prometheus

if TYPE_CHECKING:
    from floatingip.etcd_fence import EtcdFence

__all__ = ["AgentMetrics", "MeteredPool"]

T = TypeVar("T")
ETCD_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class AgentMetrics:
    """Registered in ``exporter``'s registry; ``fence()`` gives the agent's fence at scrape
    (None before it has one)."""

    def __init__(self, exporter: Exporter, fence: Callable[[], EtcdFence | None]) -> None:
        client = prometheus()
        registry = exporter.registry
        self.requests = client.Histogram(
            "floatingip_etcd_request_duration_seconds",
            "Round trip of each etcd request, by request (lease keepalive, lock, read...)",
            ["request"], buckets=ETCD_BUCKETS, registry=registry,
        )  # fmt: skip
        self.failures = client.Counter(
            "floatingip_etcd_request_failures", "etcd requests that failed or timed out",
            ["request"], registry=registry,
        )  # fmt: skip
        self.lag = client.Histogram(
            "floatingip_etcd_watch_lag_seconds",
            "From a watched change's arrival to the Manager's having applied it",
            buckets=LAG_BUCKETS, registry=registry,
        )  # fmt: skip
        self.revision = client.Gauge(
            "floatingip_etcd_watch_revision", "The last etcd revision the agent applied",
            registry=registry,
        )  # fmt: skip
        registry.register(_LeaseCollector(fence, client))

    def observe(self, request: str, seconds: float, ok: bool) -> None:
        self.requests.labels(request).observe(seconds)
        if not ok:
            self.failures.labels(request).inc()

    def watch_lag(self, received: float, revision: int) -> Callable[[], None]:
        """What the agent's worker runs after the change received at ``received`` (monotonic)."""

        def applied() -> None:
            self.lag.observe(time.monotonic() - received)
            self.revision.set(revision)

        return applied


class MeteredPool(EtcdPool):
    """An :class:`EtcdPool` whose every request is timed into ``metrics``."""

    def __init__(
        self, endpoints: Sequence[Endpoint], *, timeout: float, metrics: AgentMetrics
    ) -> None:
        super().__init__(endpoints, timeout=timeout)
        self.metrics = metrics

    async def call(
        self, what: str, request: Callable[[Any], Awaitable[T]], *, timeout: float | None = None
    ) -> T:
        started = time.monotonic()
        ok = False
        try:
            result = await super().call(what, request, timeout=timeout)
            ok = True
            return result
        finally:
            # a watch's call only opens the stream; a cancelled call is not a failure
            self.metrics.observe(what, time.monotonic() - started, ok)


class _LeaseCollector:
    """``floatingip_etcd_lease_up``, ``..._remaining_seconds`` and ``..._losses_total``."""

    def __init__(self, fence: Callable[[], EtcdFence | None], client: Any) -> None:
        self._fence = fence
        self._gauge = client.metrics_core.GaugeMetricFamily
        self._counter = client.metrics_core.CounterMetricFamily

    def collect(self) -> Iterator[Any]:
        fence = self._fence()
        if fence is None:
            return
        lease, remaining = fence.keeper.current()
        live = lease is not None and remaining > 0
        yield self._gauge(
            "floatingip_etcd_lease_up",
            "1 while the agent holds a live etcd lease (it may hold VIPs)",
            value=1.0 if live else 0.0,
        )
        yield self._gauge(
            "floatingip_etcd_lease_remaining_seconds",
            "Seconds left before the agent drops its VIPs unless the lease is renewed",
            value=max(remaining, 0.0) if live else 0.0,
        )
        yield self._counter(
            "floatingip_etcd_lease_losses", "Leases lost (the VIPs dropped)", value=fence.losses
        )

    def describe(self) -> list[Any]:
        return []
