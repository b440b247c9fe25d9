"""``floatingip agent`` with two faults to inject, for the systemd watchdog tests: SIGUSR1 wedges
the Manager's lock (floatingip.testing.wedge_manager) and SIGUSR1 again releases it; SIGUSR2
blocks the event loop for LOOP_BLOCK seconds; SIGWINCH wedges the agent's worker thread (a call
that never returns).  Run as ``python notify_agent.py agent ...``."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time

from floatingip import agent, cli
from floatingip.testing import wedge_manager

LOOP_BLOCK = 8.0

_run = agent.Agent.run


async def _run_with_faults(self: agent.Agent) -> int:
    loop = asyncio.get_running_loop()
    wedged: list[threading.Event] = []

    def toggle() -> None:
        if wedged:
            wedged.pop().set()
        elif self.manager is not None:
            wedged.append(wedge_manager(self.manager))

    loop.add_signal_handler(signal.SIGUSR1, toggle)
    loop.add_signal_handler(signal.SIGUSR2, time.sleep, LOOP_BLOCK)  # runs on the loop
    forever = threading.Event()
    loop.add_signal_handler(signal.SIGWINCH, self.worker.submit, "wedged on purpose", forever.wait)
    return await _run(self)


agent.Agent.run = _run_with_faults  # type: ignore[method-assign]

if os.environ.get("NOTIFY_AGENT_FAIL_AT_READY"):  # the run fails once the manager holds the VIP
    _start_manager = agent.Agent._start_manager

    async def _start_then_fail(self: agent.Agent, snapshot: object) -> None:
        await _start_manager(self, snapshot)  # type: ignore[arg-type]
        while self.manager is not None and not self.manager.held:
            await asyncio.sleep(0.05)
        raise RuntimeError("failing on purpose at READY, holding the VIP")

    agent.Agent._start_manager = _start_then_fail  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
