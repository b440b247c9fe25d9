"""The agent's failsafe runs however it stops: on SIGTERM even when its worker thread is wedged (a
Manager call that never returns: the failsafe must not wait in line behind it, or the agent would
exit holding the VIP with its lease revoked), and when its run fails after it took the VIP."""

from __future__ import annotations

import os
import signal
import subprocess
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


def test_a_run_that_fails_after_taking_the_vip_still_releases_it() -> None:
    require_etcd()
    directory = Path(tempfile.mkdtemp(prefix="floatingip-shutdown-"))
    listener = Listener(str(directory / "notify"))
    os.environ["NOTIFY_AGENT_FAIL_AT_READY"] = "1"  # inherited by the agent started next
    try:
        with world() as w:
            w.put("policy", '{"mode":"AUTOMATIC"}')
            w.set_datasource("db1", "master")
            db1 = start_agent(w, "db1", listener.address)
            del os.environ["NOTIFY_AGENT_FAIL_AT_READY"]
            log = lambda: w.agent_log("db1")  # noqa: E731
            try:
                status = db1.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"the agent did not end\n{log()[-3000:]}") from None
            assert "failing on purpose at READY, holding the VIP" in log(), log()[-3000:]
            assert status != 0
            assert "released master on db1" in log(), log()[-3000:]
            assert not w.holds("db1"), f"the VIP stayed on db1\n{log()[-3000:]}"
    finally:
        os.environ.pop("NOTIFY_AGENT_FAIL_AT_READY", None)
        listener.close()
        for leftover in directory.iterdir():
            leftover.unlink()
        directory.rmdir()
