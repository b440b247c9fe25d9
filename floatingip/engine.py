"""The rules engine host: one durable_rules host per Manager, one lock, no swallowed exceptions.

durable_rules is not thread-safe, swallows exceptions raised in actions, identifies facts by a
32-bit hash, and starts two timer threads per host that call into the engine in the background.
:class:`Engine` answers each: every call goes through one lock, consequences record their errors
themselves, a fact whose identity another fact already has is refused before durable_rules sees
it (durable_rules would retract or refuse the one for the other), and its host never starts the
timer threads (floatingip's rules use no timers).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import durable_rules_engine
from durable import engine as durable_engine

from floatingip.errors import EngineError
from floatingip.rules import Intent, Rule, RuleContext, RuleSet

__all__ = [
    "Engine",
    "Firing",
    "RuleFailure",
    "collision_message",
    "describe_fact",
    "fact_identity",
    "identity_collisions",
]

logger = logging.getLogger(__name__)

Fact = dict[str, Any]


def _unix_now() -> float:
    """durable_rules' clock, as it computes it (local time minus the naive epoch: UTC plus the
    local offset), without the datetime.utcfromtimestamp() it calls on every firing: deprecated
    since Python 3.12, so with warnings as errors every firing failed.  The offset is read once a
    minute (it changes on whole minutes only), not twice per change."""
    global _offset, _offset_until
    now = time.time()
    if not _offset_until - 60 <= now < _offset_until:
        _offset = float(time.localtime(now).tm_gmtoff)
        _offset_until = now - now % 60 + 60
    return now + _offset


_offset, _offset_until = 0.0, 0.0
durable_engine._unix_now = _unix_now

_FNV_PRIME, _FNV_BASIS, _MASK = 0x01000193, 0x811C9DC5, 0xFFFFFFFF

# durable_rules keeps each session's state as a fact of its own, under this id (our facts have
# no "sid": session "0").  Retracting a fact that collides with it wedges the engine.
_RESERVED = {"sid-0": "durable_rules' own session state ('sid-0')"}


def fact_identity(fact_id: str, *, signed_char: bool = True) -> int:
    """The 32-bit identity durable_rules gives a fact with this id: FNV-1a over the id as written
    in the JSON text it is handed (escapes kept, UTF-8), each byte a C ``char`` (fnv1Hash32 in
    its state.c; signed on x86, unsigned on ARM: only bytes over 0x7f differ)."""
    value = _FNV_BASIS
    for byte in json.dumps(fact_id, ensure_ascii=False)[1:-1].encode("utf-8", "surrogatepass"):
        if signed_char and byte > 0x7F:
            byte -= 0x100
        value = ((value ^ byte) & _MASK) * _FNV_PRIME & _MASK
    return value


def _identities(fact_id: str) -> set[int]:
    # Both readings of a char: a collision on either platform is refused on every platform.
    return {fact_identity(fact_id), fact_identity(fact_id, signed_char=False)}


def describe_fact(fact_id: str) -> str:
    """A fact id as messages show it (durable_rules' own ids by what they are)."""
    return _RESERVED.get(fact_id, repr(fact_id))


def identity_collisions(fact_ids: Iterable[str]) -> list[tuple[str, str]]:
    """Each id whose identity an earlier id (or durable_rules itself) already has, with that
    id; an id given twice is the same fact, not a collision."""
    taken = {identity: held for held in _RESERVED for identity in _identities(held)}
    found = []
    for fact_id in fact_ids:
        clashes = {taken[i] for i in _identities(fact_id) if taken.get(i, fact_id) != fact_id}
        if clashes:
            found.append((fact_id, min(clashes)))
            continue
        taken.update(dict.fromkeys(_identities(fact_id), fact_id))
    return found


def collision_message(fact_id: str, other: str) -> str:
    """Why a fact is refused: ``other`` (as describe_fact shows it) has its identity."""
    return (
        f"fact {fact_id!r} has the same 32-bit identity as {other} in durable_rules, which would "
        "take the one for the other; nothing was changed: rename the datasource or service"
    )


@dataclass(frozen=True)
class RuleFailure:
    """A consequence raised: which rule, where it is written, and the exception."""

    rule: str
    source: str
    exception: BaseException
    traceback: str
    raised_at: str = ""

    def __str__(self) -> str:
        kind = type(self.exception).__name__
        where = f", raised at {self.raised_at}" if self.raised_at else ""
        return f"rule {self.rule!r} ({self.source}{where}) raised {kind}: {self.exception}"


def _raised_at(rule: Rule, exc: BaseException) -> str:
    """The deepest line of the rule's own file in the traceback: where the rule file went wrong."""
    rule_file = rule.source.rpartition(":")[0]
    where = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == rule_file:
            where = f"{frame.filename}:{frame.lineno}"
    return where


@dataclass(slots=True)
class Firing:
    """What one change to the facts made the rules do: the rules fired, intents, errors."""

    fired: list[str] = field(default_factory=list)
    intents: list[Intent] = field(default_factory=list)
    errors: list[RuleFailure] = field(default_factory=list)

    def extend(self, other: Firing) -> None:
        self.fired += other.fired
        self.intents += other.intents
        self.errors += other.errors


class _Host(durable_engine.Host):  # type: ignore[misc]
    """A durable_rules host without the background dispatch threads (they would bypass the lock)."""

    def _run(self) -> None:
        pass


class Engine:
    """Holds facts by id in every ruleset; :meth:`replace` swaps a fact for its new version."""

    def __init__(self, rulesets: Sequence[RuleSet]) -> None:
        self._lock = threading.RLock()
        self._host = _Host()
        self._firing: Firing | None = None
        self._facts: dict[str, Fact] = {}
        # identity -> the fact id that has it (durable_rules' own ids included)
        self._identities = {i: held for held in _RESERVED for i in _identities(held)}
        self._closed = False
        definitions = {ruleset.name: ruleset.definition(self._consequence) for ruleset in rulesets}
        try:
            self._host.register_rulesets(definitions)
        except Exception as exc:
            raise EngineError(f"durable_rules refused the rulesets: {exc}") from exc
        self.ruleset_names = tuple(definitions)

    def _consequence(self, rule: Rule) -> Any:
        def action(closure: Any) -> None:
            firing = self._firing
            assert firing is not None, "durable_rules ran an action outside a change"
            firing.fired.append(rule.name)
            # durable_rules parsed these dicts from its JSON for this firing alone: no copy needed
            facts = getattr(closure, "_m", None) or {}
            intents: list[Intent] = []
            try:
                rule.action(RuleContext(rule, facts, intents))
            except BaseException as exc:  # durable_rules would swallow it: record it instead
                error = RuleFailure(
                    rule.name, rule.source, exc, traceback.format_exc(), _raised_at(rule, exc)
                )
                firing.errors.append(error)
                logger.error("%s\n%s", error, error.traceback)
                return
            firing.intents += intents  # a consequence that raised asks for nothing

        return action

    @property
    def facts(self) -> dict[str, Fact]:
        with self._lock:
            return {fact_id: dict(fact) for fact_id, fact in self._facts.items()}

    def replace(self, fact: Fact) -> Firing:
        """Retract the fact with ``fact["id"]`` (if held) and assert ``fact``; return what fired.

        Raises EngineError, changing nothing, for a new id whose 32-bit identity another held
        fact (or durable_rules itself) already has.
        """
        fact_id: str = fact["id"]
        with self._lock:
            if self._closed:
                raise EngineError("the engine is closed")
            old = self._facts.get(fact_id)
            if old is None and (other := self._conflict(fact_id)) is not None:
                raise EngineError(collision_message(fact_id, other))
            firing = Firing()
            self._firing = firing
            try:
                if old is not None:
                    for name in self.ruleset_names:
                        self._call(name, "retract_fact", {"id": fact_id})
                self._assert_or_restore(fact, old)
            finally:
                self._firing = None
            self._facts[fact_id] = dict(fact)
            if old is None:
                self._identities.update(dict.fromkeys(_identities(fact_id), fact_id))
            return firing

    def _conflict(self, fact_id: str) -> str | None:
        """What already has the identity of ``fact_id``, described; None if nothing does."""
        for identity in _identities(fact_id):
            held = self._identities.get(identity, fact_id)
            if held != fact_id:
                return describe_fact(held)
        return None

    def _assert_or_restore(self, fact: Fact, old: Fact | None) -> None:
        """Assert ``fact`` in every ruleset; if durable_rules still reports a collision (the
        identity check missed one), undo exactly what was done and raise EngineError.  Never
        retract by the colliding id where it was refused: that would delete the other fact."""
        stored = []
        try:
            for name in self.ruleset_names:
                if self._call(name, "assert_fact", fact):
                    stored.append(name)
        except durable_engine.MessageObservedException:
            self._firing = Firing()  # what re-asserting the old fact fires was done before
            try:
                for name in stored:
                    self._call(name, "retract_fact", {"id": fact["id"]})
                if old is not None:
                    for name in self.ruleset_names:
                        self._call(name, "assert_fact", old)
            except durable_engine.MessageObservedException:
                logger.error("could not restore fact %r after a collision", fact["id"])
            raise EngineError(
                f"durable_rules reports fact {fact['id']!r} as already observed: its 32-bit "
                "identity collides with another fact's; rename the datasource or service"
            ) from None

    def _call(self, name: str, method: str, fact: Fact) -> bool:
        """Call ``method`` of ruleset ``name``; False when no condition of it looks at the fact
        (durable_rules then does not store it)."""
        try:
            getattr(self._host, method)(name, fact)
        except durable_engine.MessageNotHandledException:
            return False
        except durable_engine.MessageObservedException:
            raise
        except Exception as exc:
            raise EngineError(f"durable_rules failed to {method} {fact!r}: {exc}") from exc
        return True

    def close(self) -> None:
        """Free the engine's rulesets; the engine refuses further changes."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for name in self.ruleset_names:
                try:
                    durable_rules_engine.delete_ruleset(self._host.get_ruleset(name)._handle)
                except Exception:
                    logger.debug("could not delete ruleset %s", name, exc_info=True)
