"""The sandbox on real namespaces: hosts reach each other, and nothing is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from floatingip.sandbox import PREFIX, Sandbox, remove_stale_sandboxes
from tests.conftest import PATIENCE, REPO, require_root
from tests.integration.conftest import sandbox_namespaces


def test_hosts_share_a_layer_2_network(sandbox: Sandbox) -> None:
    sandbox.start_server("db1", 3306)
    assert sandbox.ask("client", sandbox.addresses["db1"], 3306) == "db1"
    assert sandbox.addresses_on("db2") == ["192.0.2.12"]
    answer, error = sandbox.connect("client", sandbox.addresses["db2"], 3306, timeout=10)
    assert answer is None and "refused" in error.lower()


def test_teardown_on_exit_and_on_error() -> None:
    require_root()
    assert sandbox_namespaces(os.getpid()) == set()
    with pytest.raises(RuntimeError), Sandbox(["db1", "client"]) as sandbox:
        assert set(sandbox.namespaces.values()) < sandbox_namespaces(os.getpid())  # and the bridge
        raise RuntimeError("a failing test")
    assert sandbox_namespaces(os.getpid()) == set()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_teardown_on_ctrl_c_and_sigterm(signum: int) -> None:
    require_root()
    script = (
        "import signal, time, sys\n"
        # a test run started in the background inherits SIGINT ignored: Ctrl-C is what is tested
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from floatingip.sandbox import Sandbox\n"
        "with Sandbox(['db1', 'client']) as sandbox:\n"
        "    sandbox.start_server('db1', 3306)\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        assert len(sandbox_namespaces(process.pid)) == 3
        process.send_signal(signum)
        process.communicate(timeout=PATIENCE)
    finally:
        if process.poll() is None:  # the test failed: leave no process (nor its pipes) behind
            process.kill()
            process.communicate()
    assert sandbox_namespaces(process.pid) == set()


def test_namespaces_of_a_killed_run_are_removed_by_the_next() -> None:
    require_root()
    script = (
        "from floatingip.sandbox import Sandbox\n"
        "sandbox = Sandbox(['db1']).start()\n"
        "import os; os._exit(0)  # as if killed: no cleanup\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    assert process.wait(timeout=PATIENCE) == 0
    assert len(sandbox_namespaces(process.pid)) == 2  # left behind
    removed = remove_stale_sandboxes()
    # a sandbox starting elsewhere on the machine at this moment may have removed them first
    assert sandbox_namespaces(process.pid) == set()
    assert all(not name.startswith(f"{PREFIX}-{os.getpid()}-") for name in removed)
