"""The fence: whether this host may take a service's VIP now, asked before every start.

The Manager asks its fence before it starts a service and tells it once a stop is confirmed (the
VIP is gone). Rule files never see it: rule authors write policy, the Manager owns safety.

- Embedded (one process, or managers fed in lockstep): the default fence is duplicate address
  detection, a probe that no other host answers for the VIP when the previous holder is not
  confirmed gone.
- Distributed (a manager per host): a lease-backed lock per service on etcd; a host may hold the
  VIP only while it holds the lock, and releases the lock only after the VIP is confirmed gone.

A fence that cannot answer (etcd unreachable, a probe that cannot run) refuses: it fails closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Fence", "FenceAnswer", "OpenFence"]


@dataclass(frozen=True, kw_only=True)
class FenceAnswer:
    """Granted, or refused with the reason the operator sees (result, history, log, ``ls``)."""

    granted: bool
    reason: str = ""


@runtime_checkable
class Fence(Protocol):
    """What the Manager asks before a start and tells after a confirmed stop.

    Both are called from the Manager's dispatching thread, under the service's lock, so calls for
    one service never overlap; they must return within a bound (a fence that waits on a network
    uses its own timeout) and must not raise: a problem is a refusal with its reason.
    """

    def acquire(self, service: str, *, host: str, datasource: str | None) -> FenceAnswer:
        """May ``host`` take ``service``'s VIP now (started for ``datasource``)?"""
        ...

    def release(self, service: str, *, host: str) -> None:
        """``service``'s VIP is confirmed gone from ``host``: others may take it."""
        ...


class OpenFence:
    """Grants everything: for tests of rule files, and managers whose every host it runs itself."""

    def acquire(self, service: str, *, host: str, datasource: str | None) -> FenceAnswer:
        return FenceAnswer(granted=True)

    def release(self, service: str, *, host: str) -> None:
        return None
