"""What a rule file builds: a :class:`RuleSet` of :class:`Rule` objects, each with its conditions
(floatingip.conditions) and a consequence that sees a :class:`RuleContext` and asks for service
actions (:class:`Intent`), which the Manager runs once the engine has returned.  Rule authors
import these from :mod:`floatingip.rules`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from durable.lang import when_all

from floatingip.conditions import Condition, Fact
from floatingip.config import name_problem
from floatingip.vocabulary import Action as ServiceAction

__all__ = ["MAX_SALIENCE", "Action", "Intent", "Rule", "RuleContext", "RuleSet"]

Action = Callable[["RuleContext"], None]
_ACTIONS = tuple(ServiceAction)
# durable_rules fires lower `pri` first, from 0 (its default) to 65535: salience s is pri
# SALIENCE_ZERO - s, so that a higher salience fires first, as in Drools.
SALIENCE_ZERO = 1 << 15
MAX_SALIENCE = SALIENCE_ZERO - 1


@dataclass(frozen=True)
class Intent:
    """A service action that a rule asked for; the Manager runs it after the engine returns."""

    service: str
    action: ServiceAction | str  # a str only when a rule asked for an action no service has
    rule: str
    datasource: str | None = None


@dataclass(frozen=True)
class Rule:
    """One rule: a name, its conditions, its consequence, and where the consequence is written."""

    name: str
    conditions: tuple[Condition, ...]
    action: Action
    pri: int | None = None
    source: str = ""
    salience: int | None = None


class RuleContext:
    """What a consequence sees: the matched facts by alias (``ctx.ds``, a :class:`Fact`) and the
    service actions it may ask for."""

    def __init__(self, rule: Rule, facts: Mapping[str, Mapping[str, Any]], intents: list[Intent]):
        self.rule = rule
        self.facts = facts
        self._intents = intents
        self.log = logging.getLogger(f"floatingip.rules.{rule.name}")

    def __getattr__(self, alias: str) -> Fact:
        try:
            return Fact(self.facts[alias])
        except KeyError:
            raise AttributeError(
                f"rule {self.rule.name!r} has no fact {alias!r}; it matched {sorted(self.facts)}"
            ) from None

    def run(
        self, service: str, action: ServiceAction | str, *, datasource: str | None = None
    ) -> None:
        """Ask the Manager to run ``action`` of ``service`` once the engine has returned (an
        unknown action is reported by the Manager, as a failed command)."""
        if action in _ACTIONS:
            action = ServiceAction(action)
        self._intents.append(Intent(service, action, self.rule.name, datasource))

    def start(self, service: str, *, datasource: str | None = None) -> None:
        """Ask for ``service``'s start, for ``datasource`` (the holder the service fact shows)."""
        self.run(service, ServiceAction.START, datasource=datasource)

    def stop(self, service: str, *, datasource: str | None = None) -> None:
        """Ask for ``service``'s stop."""
        self.run(service, ServiceAction.STOP, datasource=datasource)


def _source_of(function: Callable[..., Any]) -> str:
    try:
        return f"{inspect.getsourcefile(function)}:{inspect.getsourcelines(function)[1]}"
    except (OSError, TypeError):
        return getattr(function, "__qualname__", repr(function))


class RuleSet:
    """A named set of rules; a rule file defines one (or more) at module level.

    ``services`` names the services the rules act on, so a Manager can refuse to start when the
    cluster does not define them instead of failing at the first state change.
    """

    def __init__(self, name: str, *, services: Iterable[str] = ()) -> None:
        why = name_problem(name, "ruleset")
        if why is not None:
            raise ValueError(why)
        self.name = name
        self.services = tuple(services)
        self.rules: list[Rule] = []
        self.path: Path | None = None

    def rule(
        self,
        name: str,
        *conditions: Condition,
        salience: int | None = None,
        pri: int | None = None,
    ) -> Callable[[Action], Action]:
        """Decorator: add a rule named ``name`` whose consequence is the decorated function.

        Several conditions join several facts (``c.alias << condition`` names each).  When one
        change makes several rules fire, ``salience`` orders them as in Drools: higher first
        (default 0, from -32767 to 32767).  ``pri``, durable_rules' order (lower first), is
        kept for rule files written with it; a ruleset uses one or the other.
        """
        if not conditions:
            raise ValueError(f"rule {name!r} has no conditions")
        if any(existing.name == name for existing in self.rules):
            raise ValueError(f"ruleset {self.name!r} already has a rule named {name!r}")
        _check_order(self, name, salience, pri)

        def add(action: Action) -> Action:
            self.rules.append(Rule(name, conditions, action, pri, _source_of(action), salience))
            return action

        return add

    def definition(self, make_action: Callable[[Rule], Callable[[Any], None]]) -> dict[str, Any]:
        """The durable_rules ruleset definition, each rule running ``make_action(rule)``.

        Built fresh on every call: durable_rules mutates the definitions it registers.
        """
        definition: dict[str, Any] = {}
        by_salience = any(rule.salience is not None for rule in self.rules)
        for index, rule in enumerate(self.rules):
            arguments: list[object] = list(rule.conditions)
            if by_salience:  # every rule, so that salience 0 fires after a positive one
                arguments.append({"pri": SALIENCE_ZERO - (rule.salience or 0)})
            elif rule.pri is not None:
                arguments.append({"pri": rule.pri})
            durable_rule = when_all(*arguments)
            durable_rule.func = [make_action(rule)]
            definition[f"r_{index}"] = durable_rule.define()
        return definition


def _check_order(ruleset: RuleSet, name: str, salience: int | None, pri: int | None) -> None:
    where = f"rule {name!r} of ruleset {ruleset.name!r}"
    if salience is not None:
        if isinstance(salience, bool) or not isinstance(salience, int):
            raise ValueError(f"{where}: salience must be a whole number, not {salience!r}")
        if abs(salience) > MAX_SALIENCE:
            raise ValueError(
                f"{where}: salience {salience} is out of range "
                f"(-{MAX_SALIENCE} to {MAX_SALIENCE}; higher fires first)"
            )
    uses_pri = pri is not None or any(rule.pri is not None for rule in ruleset.rules)
    uses_salience = salience is not None or any(r.salience is not None for r in ruleset.rules)
    if uses_pri and uses_salience:
        raise ValueError(
            f"{where}: a ruleset orders its rules by salience (higher first) or by pri "
            "(lower first), not both"
        )
