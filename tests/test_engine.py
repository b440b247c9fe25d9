"""floatingip.engine: the durable_rules host that never loses or swallows anything."""

from __future__ import annotations

import threading

import pytest

from floatingip import EngineError, RuleSet
from floatingip.engine import Engine
from floatingip.rules import RuleContext, c, datasource, m

# Two datasource names whose fact ids have the same 32-bit FNV-1a hash, the identity that
# durable_rules gives a fact: found by brute force over names db0, db1, ...
COLLIDING_NAMES = ("db871338", "db1263864")


def recording_ruleset(name: str = "T") -> RuleSet:
    rules = RuleSet(name)

    @rules.rule("online", c.ds << (datasource() & (m.state == "ONLINE")))
    def online(ctx: RuleContext) -> None:
        ctx.start("svc", datasource=ctx.ds["name"])

    return rules


def fact(name: str, state: str = "ONLINE") -> dict[str, object]:
    return {"id": f"datasource:{name}", "kind": "datasource", "name": name, "state": state}


def test_replace_fires_for_the_new_fact_and_keeps_one_fact_per_id() -> None:
    engine = Engine([recording_ruleset()])
    first = engine.replace(fact("db1"))
    assert [intent.datasource for intent in first.intents] == ["db1"]
    assert first.fired == ["online"]
    assert engine.replace(fact("db1", "OFFLINE")).intents == []
    again = engine.replace(fact("db1"))
    assert [intent.datasource for intent in again.intents] == ["db1"]
    assert engine.facts == {"datasource:db1": fact("db1")}


def test_two_engines_never_see_each_others_facts() -> None:
    one, two = Engine([recording_ruleset()]), Engine([recording_ruleset()])
    one.replace(fact("db1"))
    assert two.facts == {}
    assert [i.datasource for i in two.replace(fact("db2")).intents] == ["db2"]
    assert sorted(one.facts) == ["datasource:db1"]


def test_hash_collision_is_an_error_and_changes_nothing() -> None:
    engine = Engine([recording_ruleset()])
    first, second = COLLIDING_NAMES
    engine.replace(fact(first))
    with pytest.raises(EngineError, match=r"already observed.*collides"):
        engine.replace(fact(second))
    assert sorted(engine.facts) == [f"datasource:{first}"]
    # the first fact is still there and still replaceable
    assert engine.replace(fact(first, "OFFLINE")).intents == []
    assert [i.datasource for i in engine.replace(fact(first)).intents] == [first]


def test_a_raising_consequence_is_recorded_and_other_rules_still_run() -> None:
    rules = RuleSet("T")

    @rules.rule("broken", c.ds << datasource(), pri=1)
    def broken(ctx: RuleContext) -> None:
        ctx.start("half-done")
        raise RuntimeError("bug in a rule file")

    @rules.rule("healthy", c.ds << datasource(), pri=2)
    def healthy(ctx: RuleContext) -> None:
        ctx.start("svc")

    engine = Engine([rules])
    firing = engine.replace(fact("db1"))
    assert [intent.service for intent in firing.intents] == ["svc"]  # not "half-done"
    (error,) = firing.errors
    assert error.rule == "broken" and isinstance(error.exception, RuntimeError)
    assert "test_engine.py" in error.source and "bug in a rule file" in error.traceback
    assert "rule 'broken'" in str(error)
    # the engine is not wedged: the next change fires normally
    assert len(engine.replace(fact("db2")).intents) == 1


def test_no_background_threads_are_started() -> None:
    before = threading.active_count()
    engines = [Engine([recording_ruleset()]) for _ in range(20)]
    assert threading.active_count() == before
    for engine in engines:
        engine.close()


def test_closed_engine_refuses_changes() -> None:
    engine = Engine([recording_ruleset()])
    engine.close()
    engine.close()
    with pytest.raises(EngineError, match="closed"):
        engine.replace(fact("db1"))


def test_concurrent_replacements_lose_nothing() -> None:
    engine = Engine([recording_ruleset()])
    counts = [0] * 8

    def work(worker: int) -> None:
        for i in range(500):
            name = f"w{worker}x{i}"
            counts[worker] += len(engine.replace(fact(name)).intents)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts == [500] * 8
    assert len(engine.facts) == 4000
