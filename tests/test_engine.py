"""floatingip.engine: the durable_rules host that never loses or swallows anything."""

from __future__ import annotations

import datetime
import functools
import json
import threading
import time
import warnings

import pytest
from durable import engine as durable_engine

from floatingip.engine import Engine, _Host, fact_identity
from floatingip.errors import EngineError
from floatingip.rules import RuleContext, RuleSet, c, datasource, m

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
    with pytest.raises(EngineError, match=r"same 32-bit identity as .datasource:db871338."):
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


# -- fact identity collisions (issue 11, item 1) ---------------------------------------------
#
# durable_rules keys a stored fact by the 32-bit FNV-1a hash of its id as it appears in the JSON
# text (escapes kept, UTF-8, each byte sign-extended as a C char).  FNV-1a is invertible step by
# step, so a meet in the middle over 3 + 3 characters finds names with any wanted identity.

FNV_PRIME, FNV_BASIS, MASK = 0x01000193, 0x811C9DC5, 0xFFFFFFFF
FNV_PRIME_INVERSE = pow(FNV_PRIME, -1, 1 << 32)
NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._"


def fnv1a(text: str, start: int = FNV_BASIS) -> int:
    value = start
    for byte in json.dumps(text, ensure_ascii=False)[1:-1].encode():
        value = ((value ^ (byte if byte < 0x80 else byte - 0x100)) & MASK) * FNV_PRIME & MASK
    return value


def fnv1a_step(value: int, char: str) -> int:
    """The hash after one more character (a name character: no JSON escape)."""
    for byte in char.encode():
        value = ((value ^ (byte if byte < 0x80 else byte - 0x100)) & MASK) * FNV_PRIME & MASK
    return value


@functools.cache
def colliding_suffixes(prefix: str, target: str, first: str = NAME_CHARS[:62]) -> tuple[str, ...]:
    """Six-character suffixes s (their first character from ``first``) such that ``prefix + s``
    has the same identity as ``target``; some 16 on average."""
    middle: dict[int, str] = {}
    for one in first:
        after_one = fnv1a_step(fnv1a(prefix), one)
        for two in NAME_CHARS:
            after_two = fnv1a_step(after_one, two)
            for three in NAME_CHARS:
                middle[fnv1a_step(after_two, three)] = one + two + three
    found = []
    for z in NAME_CHARS:  # undo the last three steps from the target: x ^= char after * P^-1
        before_z = (fnv1a(target) * FNV_PRIME_INVERSE & MASK) ^ ord(z)
        for y in NAME_CHARS:
            before_y = (before_z * FNV_PRIME_INVERSE & MASK) ^ ord(y)
            for x in NAME_CHARS:
                before_x = (before_y * FNV_PRIME_INVERSE & MASK) ^ ord(x)
                if before_x in middle:
                    found.append(middle[before_x] + x + y + z)
    return tuple(found)


def colliding_name(target: str, prefix: str = "datasource:") -> str:
    """A datasource (or service) name whose fact id has the identity of fact id ``target``."""
    name = colliding_suffixes(prefix, target)[0]
    assert fnv1a(prefix + name) == fnv1a(target) and prefix + name != target
    return name


@pytest.mark.parametrize(
    ("prefix", "target", "first"),
    [
        ("datasource:", "service:master", NAME_CHARS[:62]),
        ("service:", "manager", NAME_CHARS[:62]),
        ('a "quoted" \\ id\n', "policy", NAME_CHARS),  # escapes count as written in JSON
        ("", "sid-0", "".join(chr(c) for c in range(0xC0, 0x100))),  # non-ASCII, signed chars
    ],
)
def test_the_brute_forcer_finds_what_durable_rules_itself_reports_as_colliding(
    prefix: str, target: str, first: str
) -> None:
    """The test's hash is durable_rules' hash: durable_rules refuses the forged ids."""
    host = _Host()
    host.set_rulesets({"r": {"any": {"all": [{"m": {"kind": "x"}}], "run": lambda c: None}}})
    host.assert_fact("r", {"id": "first", "kind": "x"})
    if target != "sid-0":  # durable_rules' own id for the session's state, held from then on
        host.assert_fact("r", {"id": target, "kind": "x"})
    forged = [prefix + suffix for suffix in colliding_suffixes(prefix, target, first)]
    assert len(forged) >= 3
    for fact_id in forged:
        with pytest.raises(durable_engine.MessageObservedException):
            host.assert_fact("r", {"id": fact_id, "kind": "x"})
    host.assert_fact("r", {"id": prefix + "not-forged", "kind": "x"})  # others are accepted
    for text in [target, *forged, 'é€ 漢字 \x01 \\ "', ""]:
        assert fact_identity(text) == fnv1a(text)


KINDS = ("manager", "policy", "service", "datasource")


def every_kind_ruleset() -> RuleSet:
    """Fires 'seen <id>' for every fact it holds whenever a trigger fact is asserted."""
    rules = RuleSet("Every")
    for kind in KINDS:

        def seen(ctx: RuleContext) -> None:
            ctx.run("svc", "status", datasource=ctx.x["id"])

        rules.rule(f"seen {kind}", c.t << (m.kind == "trigger"), c.x << (m.kind == kind))(seen)
    return rules


def held_ids(engine: Engine) -> list[str]:
    """The ids the rules can still join with: what durable_rules really holds."""
    trigger = {"id": "trigger", "kind": "trigger", "at": time.monotonic_ns()}
    return sorted(str(intent.datasource) for intent in engine.replace(trigger).intents)


def every_kind_engine() -> Engine:
    engine = Engine([every_kind_ruleset()])
    for fact_id, kind in [
        ("manager", "manager"),
        ("policy", "policy"),
        ("service:master", "service"),
        ("datasource:db1", "datasource"),
    ]:
        engine.replace({"id": fact_id, "kind": kind, "state": "ONLINE"})
    return engine


@pytest.mark.parametrize("target", ["manager", "policy", "service:master", "datasource:db1"])
@pytest.mark.parametrize("kind", ["datasource", "service"])
def test_a_refused_collision_changes_no_other_fact(target: str, kind: str) -> None:
    engine = every_kind_engine()
    held = held_ids(engine)
    before = engine.facts
    assert held == ["datasource:db1", "manager", "policy", "service:master"]
    forged = f"{kind}:{colliding_name(target, f'{kind}:')}"
    with pytest.raises(EngineError, match=rf"{forged}.*same 32-bit identity as {target!r}"):
        engine.replace({"id": forged, "kind": kind, "state": "ONLINE"})
    assert engine.facts == before and held_ids(engine) == held


def test_a_collision_with_durable_rules_own_session_state_is_refused() -> None:
    """Retracting a fact that collides with the session state ('sid-0') wedged the engine:
    the next change never returned."""
    engine = every_kind_engine()
    forged = f"datasource:{colliding_name('sid-0')}"
    with pytest.raises(EngineError, match="durable_rules' own session state"):
        engine.replace({"id": forged, "kind": "datasource"})
    done = threading.Event()

    def change() -> None:
        held_ids(engine)
        done.set()

    threading.Thread(target=change, daemon=True).start()
    assert done.wait(60), "the engine is wedged after a refused collision"
    assert held_ids(engine) == ["datasource:db1", "manager", "policy", "service:master"]


def test_a_collision_the_check_missed_still_deletes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second line: if durable_rules reports a collision that the identity check did not
    foresee, the other fact is left alone and the replaced one restored."""
    engine = every_kind_engine()
    monkeypatch.setattr(engine, "_conflict", lambda fact_id: None)
    engine.replace({"id": "datasource:db2", "kind": "datasource", "state": "OFFLINE"})
    forged = f"datasource:{colliding_name('service:master')}"
    with pytest.raises(EngineError, match="already observed"):
        engine.replace({"id": forged, "kind": "datasource"})
    expected = ["datasource:db1", "datasource:db2", "manager", "policy", "service:master"]
    assert held_ids(engine) == expected
    assert forged not in engine.facts


def test_durable_rules_clock_is_replaced_by_one_that_does_not_warn() -> None:
    """durable_rules' own _unix_now calls datetime.utcfromtimestamp() on every firing
    (deprecated since Python 3.12): with warnings as errors, every firing failed."""
    assert "utcfromtimestamp" not in durable_engine._unix_now.__code__.co_names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        original = (datetime.datetime.now() - datetime.datetime.utcfromtimestamp(0)).total_seconds()
    assert abs(durable_engine._unix_now() - original) < 1.0
    engine = Engine([recording_ruleset()])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        firing = engine.replace(fact("db1"))
    assert firing.errors == [] and [i.datasource for i in firing.intents] == ["db1"]
