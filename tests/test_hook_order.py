"""floatingip.hooks.order: a call cancelled by its tool never acts after the call that replaced
it, and a record another account could have written is not believed."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from floatingip.hooks.order import CallOrder, process_start
from tests.conftest import require_root


def test_a_call_started_before_the_recorded_one_is_superseded(tmp_path: Path) -> None:
    order = CallOrder(tmp_path / "floatingip-demo-db1.order")
    assert order.later_than(100) is None  # nothing recorded yet
    order.register(200, "patroni on_role_change master demo")
    later = order.later_than(100)
    assert later is not None and later.event == "patroni on_role_change master demo"
    assert order.later_than(200) is None  # the same tick: both act, as before
    assert order.later_than(300) is None
    order.register(300, "patroni on_stop replica demo")
    assert order.later_than(250) is not None


def test_a_record_from_before_the_last_boot_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "floatingip-demo-db1.order"
    path.write_text("another-boot 999999999 patroni on_role_change master demo\n")
    path.chmod(0o644)
    assert CallOrder(path).later_than(1) is None


def test_this_process_has_a_start_time() -> None:
    start = process_start()
    assert start is not None and start > 0
    assert process_start(os.getppid()) is not None
    assert process_start(2**22 + 12345) is None  # no such process


@pytest.mark.parametrize("mode", [0o664, 0o646])
def test_a_record_others_may_write_is_ignored_with_a_warning(
    tmp_path: Path, mode: int, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "floatingip-demo-db1.order"
    order = CallOrder(path)
    order.register(500, "patroni on_role_change master demo")
    path.chmod(mode)
    with caplog.at_level(logging.WARNING, logger="floatingip.hooks.order"):
        assert order.later_than(100) is None
    assert f"ignoring {path}: writable by other accounts" in caplog.text


def test_a_record_owned_by_another_account_is_ignored_and_replaced_by_root(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_root()
    path = tmp_path / "floatingip-demo-db1.order"
    path.write_text(f"{CallOrder(path).boot} 999999999 forged\n")
    path.chmod(0o644)
    os.chown(path, 65534, 65534)  # nobody
    order = CallOrder(path)
    with caplog.at_level(logging.WARNING, logger="floatingip.hooks.order"):
        assert order.later_than(100) is None
    assert "owned by uid 65534, neither root nor this account" in caplog.text
    order.register(100, "patroni on_start master demo")
    assert path.stat().st_uid == 0
    assert order.later_than(50) is not None


def test_registering_never_replaces_a_later_call(tmp_path: Path) -> None:
    order = CallOrder(tmp_path / "floatingip-demo-db1.order")
    order.register(300, "patroni on_role_change replica demo")
    order.register(200, "patroni on_role_change master demo")  # the cancelled one, late
    later = order.later_than(200)
    assert later is not None and later.start == 300 and "replica" in later.event
