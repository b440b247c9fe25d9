"""SIGTERM releases the VIP even when the agent's worker thread is wedged (a Manager call that
never returns): the failsafe must not wait in line behind it, or the agent would exit holding the
VIP with its lease revoked."""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path

from tests.integration.etcd_world import require_etcd, world
from tests.integration.test_systemd_notify import DEADLINE, Listener, start_agent, wait


def test_sigterm_releases_the_vip_while_the_worker_is_wedged() -> None:
    require_etcd()
    directory = Path(tempfile.mkdtemp(prefix="floatingip-shutdown-"))
    listener = Listener(str(directory / "notify"))
    try:
        with world() as w:
            w.put("policy", '{"mode":"AUTOMATIC"}')
            w.set_datasource("db1", "master")
            db1 = start_agent(w, "db1", listener.address)
            log = lambda: w.agent_log("db1")  # noqa: E731
            wait("db1 takes the VIP", lambda: w.holds("db1"), log)
            wait("db1 is ready", lambda: listener.with_key("READY"), log)

            db1.send_signal(signal.SIGWINCH)  # the worker now runs a call that never returns
            wait(
                "the worker is wedged (the watchdog says the manager does not answer)",
                lambda: "no WATCHDOG=1 ping" in log(),
                log,
            )
            db1.terminate()
            status = db1.wait(timeout=DEADLINE)
            assert not w.holds("db1"), f"the VIP stayed on db1 after SIGTERM\n{log()[-3000:]}"
            assert status == 0, log()[-3000:]
    finally:
        listener.close()
        for leftover in directory.iterdir():
            leftover.unlink()
        directory.rmdir()
