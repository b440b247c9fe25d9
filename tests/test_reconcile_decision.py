"""Reconcile's decision, as a pure function of what is believed and what the probes found."""

from __future__ import annotations

from floatingip.reconcile import decide

OWNERS = {"db1": "db1", "db2": "db2", "web": None}


def test_found_where_believed_is_no_drift() -> None:
    decision = decide(believed_host="db1", found={"db1": True, "db2": False}, owners=OWNERS)
    assert not decision.drift and decision.stop_on == ()


def test_nowhere_and_believed_nowhere_is_no_drift() -> None:
    assert not decide(believed_host=None, found={"db1": False}, owners=OWNERS).drift


def test_deleted_by_someone_else_is_no_longer_believed_held() -> None:
    decision = decide(believed_host="db1", found={"db1": False, "db2": False}, owners=OWNERS)
    assert decision.drift and decision.holder is None and decision.stop_on == ()
    assert decision.message == "drift: expected on db1, found on nowhere"


def test_found_elsewhere_is_kept_there_without_a_flap() -> None:
    decision = decide(believed_host=None, found={"db1": False, "db2": True}, owners=OWNERS)
    assert decision.drift and decision.holder == "db2" and decision.stop_on == ()
    assert decision.message == "drift: expected on no host, found on db2"


def test_two_holders_keep_the_believed_one_and_release_the_other() -> None:
    decision = decide(believed_host="db2", found={"db1": True, "db2": True}, owners=OWNERS)
    assert decision.holder == "db2" and decision.stop_on == ("db1",)


def test_a_vip_where_no_datasource_runs_is_released() -> None:
    decision = decide(believed_host=None, found={"web": True}, owners=OWNERS)
    assert decision.holder is None and decision.stop_on == ("web",)


def test_an_unreadable_host_leaves_the_belief_alone() -> None:
    unread = decide(believed_host="db1", found={"db1": None, "db2": False}, owners=OWNERS)
    assert unread.unreadable == ("db1",) and not unread.drift
    nothing_read = decide(believed_host=None, found={"db1": None}, owners=OWNERS)
    assert nothing_read.unreadable == ("db1",) and not nothing_read.drift
    # another host unreadable, but the VIP found: the decision is still made
    found = decide(believed_host=None, found={"db1": True, "db2": None}, owners=OWNERS)
    assert found.drift and found.holder == "db1"
