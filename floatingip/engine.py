"""The rules engine host: one durable_rules host per Manager, one lock, no swallowed exceptions.

durable_rules is not thread-safe, swallows exceptions raised in actions, identifies facts by a
32-bit hash, and starts two timer threads per host that call into the engine in the background.
:class:`Engine` answers each: every call goes through one lock, consequences record their errors
themselves, an "already observed" answer for a fact it does not hold is a collision and an error,
and its host never starts the timer threads (floatingip's rules use no timers).
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import durable_rules_engine
from durable import engine as durable_engine

from floatingip.errors import EngineError
from floatingip.rules import Intent, Rule, RuleContext, RuleSet

__all__ = ["Engine", "Firing", "RuleFailure"]

logger = logging.getLogger(__name__)

Fact = dict[str, Any]


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


@dataclass
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
            facts = {
                alias: dict(fact) for alias, fact in (getattr(closure, "_m", None) or {}).items()
            }
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

        Raises EngineError, with the old fact restored, if durable_rules reports the new fact as
        already observed: its 32-bit identity hash collides with another fact's.
        """
        fact_id = fact["id"]
        with self._lock:
            if self._closed:
                raise EngineError("the engine is closed")
            firing = Firing()
            self._firing = firing
            old = self._facts.get(fact_id)
            try:
                if old is not None:
                    self._call("retract_fact", {"id": fact_id})
                try:
                    self._call("assert_fact", fact)
                except durable_engine.MessageObservedException:
                    self._restore(fact_id, old)
                    raise EngineError(
                        f"durable_rules reports fact {fact_id!r} as already observed: its "
                        "identity hash collides with another fact's; rename the datasource or "
                        "service"
                    ) from None
            finally:
                self._firing = None
            self._facts[fact_id] = dict(fact)
            return firing

    def _restore(self, fact_id: str, old: Fact | None) -> None:
        self._firing = Firing()  # what re-asserting the old fact fires has already been done
        try:
            self._call("retract_fact", {"id": fact_id})
            if old is not None:
                self._call("assert_fact", old)
        except durable_engine.MessageObservedException:
            logger.error("could not restore fact %r after a collision", fact_id)

    def _call(self, method: str, fact: Fact) -> None:
        for name in self.ruleset_names:
            try:
                getattr(self._host, method)(name, fact)
            except durable_engine.MessageNotHandledException:
                pass  # no condition of this ruleset looks at the fact: nothing to do
            except durable_engine.MessageObservedException:
                raise
            except Exception as exc:
                raise EngineError(f"durable_rules failed to {method} {fact!r}: {exc}") from exc

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
