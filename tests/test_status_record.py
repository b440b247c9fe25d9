"""The agent's status record (floatingip.status_etcd.StatusRecord) without etcd: what it keeps
of the Manager's events, and that it waits, rather than spins, while there is no lease."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from floatingip.results import Event
from floatingip.status_etcd import StatusRecord
from floatingip.vocabulary import EventKind


class Keeper:
    """A lease keeper with no lease: counts how often it is asked."""

    def __init__(self) -> None:
        self.asked = 0

    def current(self, wait: float = 0.0) -> tuple[int | None, float]:
        self.asked += 1
        return None, 0.0


def test_without_a_lease_the_record_waits_instead_of_spinning() -> None:
    keeper = Keeper()

    async def scenario() -> None:
        record = StatusRecord(
            pool=None,  # type: ignore[arg-type]  # never called without a lease
            cluster="demo", host="db1", keeper=keeper, loop=asyncio.get_running_loop(),  # type: ignore[arg-type]
        )  # fmt: skip
        record.on_event(Event(kind=EventKind.COMMAND, message="start failed", ok=False,
                              service="master"))  # fmt: skip
        task = asyncio.create_task(record.run())
        await asyncio.sleep(0.5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        value: dict[str, Any] = json.loads(record.value())
        assert value["services"]["master"]["last_error"] == "start failed"

    # in a thread of its own: a record that spins never lets the loop end, and would hang pytest
    runner = threading.Thread(target=asyncio.run, args=(scenario(),), daemon=True)
    runner.start()
    runner.join(60)
    assert not runner.is_alive(), "the record's task spun and could not be cancelled"
    # once at the first check (the record is due at once), then every few seconds: a loop
    # that spun on the unwritable record would have asked thousands of times
    assert 1 <= keeper.asked <= 3, keeper.asked


def test_only_failures_and_repairs_are_kept() -> None:
    async def scenario() -> StatusRecord:
        return StatusRecord(
            pool=None,  # type: ignore[arg-type]
            cluster="demo", host="db1", keeper=Keeper(), loop=asyncio.get_running_loop(),  # type: ignore[arg-type]
        )  # fmt: skip

    record = asyncio.run(scenario())
    record.on_event(Event(kind=EventKind.DATASOURCE, message="datasource db1: ONLINE again"))
    record.on_event(Event(kind=EventKind.COMMAND, message="master start ran", service="master"))
    assert record.services == {}
