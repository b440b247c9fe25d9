"""Deleting a service's lock on etcd (floatingip.etcd_fence): a release, a give-back, or the
clean-up of what a start that got no answer may have written."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from floatingip.cluster_state import (
    ClusterStateError,
    holder_key,
    parse_holder,
    released_key,
    released_value,
)
from floatingip.etcd_client import EtcdPool

__all__ = ["Deletion", "delete_lock", "merged"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deletion:
    """A deletion of a service's lock that etcd has not taken yet."""

    clean: bool  # the VIP was confirmed gone: record a clean release
    only: tuple[bytes, ...] | None = None  # only a lock of one of these values (unanswered starts)


def merged(before: Deletion | None, deletion: Deletion | None) -> Deletion | None:
    """``deletion`` added to ``before`` (both of one service's lock): a deletion of the whole
    lock covers a deletion of values (``only``: what refused starts wrote)."""
    if deletion is None or (before is not None and before.only is None):
        return before
    if before is not None and deletion.only is not None:
        return Deletion(False, only=(before.only or ()) + deletion.only)
    return deletion


async def delete_lock(
    pool: EtcdPool, cluster: str, host: str, service: str, entry: Deletion, timeout: float
) -> None:
    """A txn on the key's revision: a key another host wrote meanwhile is left alone, and so is
    one of ours that ``entry.only`` does not name.  ``entry.clean`` (the VIP was confirmed
    gone): the same txn records the release, so that the next holder skips the duplicate
    address check.  EtcdError when etcd does not answer."""
    key = holder_key(cluster, service).encode()
    found = await pool.call("read lock", lambda client: client.get(key), timeout=timeout)
    if found is None or not _ours(key.decode(), service, found.value, host):
        return
    if entry.only is not None and bytes(found.value) not in entry.only:
        return  # not what an unanswered start wrote (etcd did not take it): a later grant's
    clean = entry.clean
    revision = found.mod_revision
    record = released_value(host, int(revision))
    released = released_key(cluster, service).encode()

    async def delete(client: Any) -> Any:
        t = client.transactions
        success = [t.delete(key)] + ([t.put(released, record)] if clean else [])
        return await client.transaction(
            compare=[t.mod(key) == revision], success=success, failure=[]
        )

    await pool.call("unlock", delete, timeout=timeout)
    how = (
        "released (VIP confirmed gone)" if clean
        else "given back (the start did not run)" if entry.only is None
        else "deleted (written by a start that got no answer)"
    )  # fmt: skip
    logger.info("%s: lock %s %s", service, key.decode(), how)


def _ours(key: str, service: str, value: bytes, host: str) -> bool:
    try:
        return parse_holder(key, service, value).host == host
    except ClusterStateError:
        try:  # a holder key we cannot read is not ours to delete
            return bool(json.loads(value).get("host") == host)
        except Exception:
            return False
