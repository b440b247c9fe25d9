"""The etcd connection of the distributed mode: endpoints, one client each, and rotation.

aetcd (asyncio, gRPC) takes one ``host:port`` per client, so the pool keeps one client per
``--etcd`` URL and moves to the next after a connection failure or a timeout.  Every call gets
its own deadline (``asyncio.wait_for``): a frozen or partitioned etcd member answers nothing,
and the caller must learn that within a bound.  aetcd is imported only here, and only when the
distributed mode is used: the embedded default needs no etcd client.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from floatingip.errors import FloatingIPError, UsageError

__all__ = ["Endpoint", "EtcdError", "EtcdPool", "import_aetcd", "parse_endpoints"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# grpc core backs off up to 120 s between reconnects by default: an agent cut off from etcd for
# minutes would then stay away long after etcd is back.
_CHANNEL_OPTIONS = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
}


class EtcdError(FloatingIPError):
    """etcd could not be reached or answered an error; carries the endpoint and the call."""


def import_aetcd() -> Any:
    """The aetcd module, or a UsageError saying how to install it."""
    # grpc's fork handlers crash children forked while its threads run (measured: `ip`
    # segfaulting under the agent); the agent forks for every command and never uses grpc in a
    # child, so they are switched off before grpc is loaded.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    try:
        import aetcd  # type: ignore[import-untyped]
    except ImportError as exc:
        raise UsageError(
            f"the distributed mode needs the etcd client (pip install 'floatingip[etcd]'): {exc}"
        ) from None
    return aetcd


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_endpoints(text: str) -> tuple[Endpoint, ...]:
    """``http://HOST:PORT[,http://HOST:PORT...]`` (scheme and port optional: http, 2379).

    UsageError naming the bad URL; TLS is not supported yet, so https is refused, not ignored.
    """
    if not isinstance(text, str) or not text.strip():
        raise UsageError("--etcd needs at least one URL, such as http://192.0.2.10:2379")
    endpoints = []
    for part in text.split(","):
        url = part.strip()
        split = urlsplit(url if "://" in url else f"http://{url}")
        if split.scheme != "http":
            raise UsageError(f"etcd URL {url!r}: only http:// is supported (no TLS yet)")
        if split.path not in ("", "/") or split.query or split.username or not split.hostname:
            raise UsageError(f"etcd URL {url!r}: expected http://HOST:PORT")
        try:
            port = split.port or 2379
        except ValueError:
            raise UsageError(f"etcd URL {url!r}: the port is not a number in 1-65535") from None
        host = split.hostname
        if ":" in host:
            ipaddress.ip_address(host)  # an IPv6 literal must be one
        endpoints.append(Endpoint(host, port))
    if len(set(endpoints)) != len(endpoints):
        raise UsageError(f"--etcd lists an endpoint twice: {text!r}")
    return tuple(endpoints)


class EtcdPool:
    """One aetcd client per endpoint; :meth:`call` runs a request on the current one with a
    deadline and moves to the next endpoint when it fails.  Use from one event loop."""

    def __init__(self, endpoints: Sequence[Endpoint], *, timeout: float) -> None:
        if not endpoints:
            raise UsageError("at least one etcd endpoint is needed")
        self._aetcd = import_aetcd()
        self.endpoints = tuple(endpoints)
        self.timeout = timeout
        self._clients: dict[Endpoint, Any] = {}
        self._current = 0
        self.rotations = 0

    @property
    def endpoint(self) -> Endpoint:
        return self.endpoints[self._current]

    def client(self) -> Any:
        """The current endpoint's client (made on first use; it connects lazily)."""
        endpoint = self.endpoint
        client = self._clients.get(endpoint)
        if client is None:
            client = self._aetcd.Client(
                host=endpoint.host,
                port=endpoint.port,
                timeout=self.timeout,
                options=dict(_CHANNEL_OPTIONS),
                connect_wait_timeout=max(1, round(self.timeout)),
            )
            self._clients[endpoint] = client
        return client

    def rotate(self, failed: Endpoint) -> None:
        """Move on from ``failed`` (unless another caller already did)."""
        if len(self.endpoints) > 1 and self.endpoint == failed:
            self._current = (self._current + 1) % len(self.endpoints)
            self.rotations += 1
            logger.info("etcd: %s failed, now using %s", failed, self.endpoint)

    async def call(
        self, what: str, request: Callable[[Any], Awaitable[T]], *, timeout: float | None = None
    ) -> T:
        """``await request(client)`` within ``timeout`` (default the pool's); EtcdError naming
        ``what`` and the endpoint on any failure, after which the next endpoint is used."""
        endpoint = self.endpoint
        client = self.client()
        try:
            return await asyncio.wait_for(request(client), timeout or self.timeout)
        except asyncio.CancelledError:
            raise
        except (asyncio.TimeoutError, TimeoutError):
            self.rotate(endpoint)
            raise EtcdError(
                f"etcd {what} at {endpoint}: no answer within {timeout or self.timeout:g} s"
            ) from None
        except Exception as exc:
            if not isinstance(exc, self._aetcd.exceptions.PreconditionFailedError):
                self.rotate(endpoint)
            raise EtcdError(f"etcd {what} at {endpoint}: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        for client in self._clients.values():
            try:
                await asyncio.wait_for(client.close(), self.timeout)
            except Exception as exc:  # closing is best effort
                logger.debug("closing etcd client: %r", exc)
        self._clients.clear()
