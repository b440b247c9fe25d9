"""floatingip.rules: what a rule author writes (RuleSet, conditions, salience, consequences)."""

from __future__ import annotations

from pathlib import Path

import pytest

from floatingip import Manager
from floatingip.engine import Engine
from floatingip.rules import (
    RuleContext,
    RuleSet,
    active_policy,
    c,
    datasource,
    m,
    one_of,
    other_than,
    shipped_rules_dir,
)
from floatingip.testing import RecordingExecutor
from tests.test_rule_files import write_rule_file


def test_ruleset_and_rule_names_are_checked() -> None:
    with pytest.raises(ValueError, match="ruleset name"):
        RuleSet("bad name")
    rules = RuleSet("Ok")
    rules.rule("r", object())(lambda ctx: None)
    with pytest.raises(ValueError, match="already has a rule named 'r'"):
        rules.rule("r", object())


# -- rule files that say what they mean (issue 12, item 6) -----------------------------------

# The shipped rule file as it was written before the condition helpers, pri and attribute
# access: raw durable DSL, dict lookups in consequences.  Rule files like it keep working.
OLD_STYLE_RULES = """
from floatingip.rules import RuleSet, active_policy, c, datasource, m, manager_running
from floatingip.rules import manager_stopping, service

rules = RuleSet("OldStyle", services=["master"])


@rules.rule(
    "the master on this host goes ONLINE",
    c.ds << datasource(role="master", state="ONLINE", local=True),
    c.policy << active_policy(),
    c.vip << service("master", held=False),
    c.manager << manager_running(),
    pri=2,
)
def master_online(ctx):
    ctx.start("master", datasource=ctx.ds["name"])


@rules.rule(
    "the datasource holding the VIP stops being an ONLINE master",
    c.vip << service("master", held=True),
    c.ds
    << (
        datasource()
        & (m.name == c.vip.holder)
        & ((m.role != "master") | (m.state != "ONLINE") | (m.local == False))
    ),
    c.policy << active_policy(),
    pri=1,
)
def master_not_online(ctx):
    ctx.stop("master", datasource=ctx.ds["name"])


@rules.rule(
    "failsafe, the manager stops while holding the VIP",
    c.manager << manager_stopping(),
    c.policy << active_policy(),
    c.vip << service("master", held=True),
)
def failsafe(ctx):
    ctx.stop("master", datasource=ctx.vip["holder"] or None)
"""


def test_the_unless_helper_is_the_raw_condition_it_replaces() -> None:
    helper = datasource(
        name=c.vip.holder, unless={"role": "master", "state": "ONLINE", "local": True}
    )
    raw = (
        datasource()
        & (m.name == c.vip.holder)
        & ((m.role != "master") | (m.state != "ONLINE") | (m.local == False))  # noqa: E712
    )
    assert helper.define() == raw.define()  # type: ignore[attr-defined]
    raw_policy = (m.kind == "policy") & (m.mode != "MAINTENANCE")
    assert active_policy().define() == raw_policy.define()  # type: ignore[attr-defined]


def session(manager: Manager) -> None:
    """Start, stop, start again, lose the role, start, close: every rule of the file fires."""
    manager.update_datasource("db1", state="ONLINE")
    manager.update_datasource("db1", state="OFFLINE")
    manager.update_datasource("db1", state="ONLINE")
    manager.update_datasource("db1", role="slave")
    manager.update_datasource("db1", role="master")
    manager.close()


def test_an_old_style_rule_file_behaves_as_the_shipped_one(demo_home: Path, tmp_path: Path) -> None:
    old_dir = tmp_path / "old-rules"
    write_rule_file(old_dir, "OldStyle.py", OLD_STYLE_RULES)
    calls = []
    for rules_dir in (shipped_rules_dir(), old_dir):
        recorder = RecordingExecutor()
        manager = Manager.from_cluster_home(
            demo_home, "demo", rules_dir=rules_dir, host="db1", executor=recorder
        )
        session(manager)
        calls.append(recorder.calls)
        fired = {e.message for e in manager.history if e.kind == "command"}
        assert fired
    shipped, old = calls
    assert old == shipped
    assert [call[4] for call in shipped if call[2:4] == ("ip", "addr")] == [
        "add", "del", "add", "del", "add", "del"
    ]  # fmt: skip


def firing_order(*rules: tuple[str, dict[str, int]]) -> list[str]:
    ruleset = RuleSet("Order")
    for name, order in rules:
        ruleset.rule(name, c.ds << datasource(), **order)(lambda ctx: None)
    return Engine([ruleset]).replace({"id": "datasource:db1", "kind": "datasource"}).fired


def test_salience_fires_higher_first_as_in_drools_and_pri_lower_first() -> None:
    assert firing_order(("low", {"salience": -5}), ("default", {}), ("high", {"salience": 10})) == [
        "high",
        "default",
        "low",
    ]
    assert firing_order(("second", {"pri": 2}), ("first", {"pri": 1})) == ["first", "second"]


def test_salience_and_pri_do_not_mix_and_salience_is_bounded() -> None:
    ruleset = RuleSet("Mixed")
    ruleset.rule("a", c.ds << datasource(), pri=1)(lambda ctx: None)
    with pytest.raises(ValueError, match=r"salience .* or by pri .*not both"):
        ruleset.rule("b", c.ds << datasource(), salience=1)
    with pytest.raises(ValueError, match="not both"):
        RuleSet("X").rule("c", c.ds << datasource(), salience=1, pri=1)
    with pytest.raises(ValueError, match="out of range"):
        RuleSet("Y").rule("d", c.ds << datasource(), salience=40000)


def test_one_of_and_other_than_match_membership_and_inequality() -> None:
    ruleset = RuleSet("Members")

    @ruleset.rule("a relay or a standby", c.ds << datasource(role=one_of("relay", "standby")))
    def member(ctx: RuleContext) -> None:
        ctx.start("member", datasource=ctx.ds.name)

    @ruleset.rule("not ONLINE", c.ds << datasource(state=other_than("ONLINE", "UNKNOWN")))
    def other(ctx: RuleContext) -> None:
        ctx.start("other", datasource=ctx.ds.name)

    engine = Engine([ruleset])

    def asked(name: str, role: str, state: str) -> list[str]:
        fact = {"id": f"datasource:{name}", "kind": "datasource", "name": name, "role": role}
        fired = engine.replace({**fact, "state": state})
        return [intent.service for intent in fired.intents]

    assert asked("a", "relay", "ONLINE") == ["member"]
    assert asked("b", "standby", "FAILED") == ["member", "other"]
    assert asked("c", "master", "OFFLINE") == ["other"]
    assert asked("d", "master", "UNKNOWN") == []
    with pytest.raises(ValueError, match="at least one value"):
        one_of()


def test_a_consequence_reads_fields_as_attributes_or_keys() -> None:
    seen: list[object] = []
    ruleset = RuleSet("Attributes")

    @ruleset.rule("any", c.ds << datasource())
    def read(ctx: RuleContext) -> None:
        seen.extend([ctx.ds.name, ctx.ds["name"], ctx.ds.local, dict(ctx.ds)["state"]])
        try:
            ctx.ds.holder  # noqa: B018
        except AttributeError as exc:
            seen.append(str(exc))
        try:
            ctx.ds.name = "x"  # type: ignore[misc]
        except AttributeError as exc:
            seen.append(str(exc))

    fact = {"id": "datasource:db1", "kind": "datasource", "name": "db1", "local": True}
    assert Engine([ruleset]).replace({**fact, "state": "ONLINE"}).errors == []
    assert seen[:4] == ["db1", "db1", True, "ONLINE"]
    assert "a datasource fact has no field 'holder'" in str(seen[4])
    assert "read-only" in str(seen[5])
