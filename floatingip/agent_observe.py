"""The agent's observability, kept apart from its following of etcd: its metrics
(floatingip.metrics_agent), its Manager's (floatingip.metrics) and its status record in etcd
(floatingip.status_etcd).  :class:`floatingip.agent.Agent` mixes it in."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from floatingip.etcd_client import Endpoint, EtcdPool
from floatingip.etcd_fence import EtcdFence
from floatingip.manager import Manager
from floatingip.metrics import Exporter
from floatingip.metrics_agent import AgentMetrics, MeteredPool
from floatingip.status_etcd import StatusRecord

__all__ = ["Observed"]


class Observed:
    """What the agent sets up (its ``__init__`` and ``run``) and these methods use."""

    cluster: str
    host: str
    endpoints: tuple[Endpoint, ...]
    pool: EtcdPool
    fence: EtcdFence
    exporter: Exporter | None
    metrics: AgentMetrics | None
    _record_task: asyncio.Task[None] | None

    def _submit(self, what: str, call: Callable[[], Any]) -> None:
        raise NotImplementedError

    def _fence(self) -> EtcdFence | None:
        return getattr(self, "fence", None)

    def _new_pool(self) -> EtcdPool:
        if self.metrics is None:
            return EtcdPool(self.endpoints, timeout=1.0)
        return MeteredPool(self.endpoints, timeout=1.0, metrics=self.metrics)

    def _observe(self, manager: Manager) -> None:
        """The Manager's metrics, and this agent's status record in etcd, follow its events."""
        record = StatusRecord(
            pool=self.pool, cluster=self.cluster, host=self.host, keeper=self.fence.keeper,
            loop=asyncio.get_running_loop(),
        )  # fmt: skip
        manager.add_listener(record.on_event)
        self._record_task = asyncio.create_task(record.run(), name="status record")
        if self.exporter is not None:
            self.exporter.follow(manager)

    def _note_lag(self, received: float, revision: int) -> None:
        """Once the worker has applied what arrived at ``received``, the lag is observed."""
        if self.metrics is not None:
            self._submit("watch lag", self.metrics.watch_lag(received, revision))

    async def _stop_observing(self) -> None:
        if self._record_task is not None:
            self._record_task.cancel()
            await asyncio.gather(self._record_task, return_exceptions=True)
        if self.exporter is not None:
            self.exporter.close()
