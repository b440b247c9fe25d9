"""Rule files: Python modules in a rules directory that read like Tungsten's ``.drl`` files.

A rule file creates a :class:`RuleSet` and adds rules to it, each with a name, its conditions
(one per fact, named ``c.alias << condition``; several conditions join several facts) and its
consequence::

    rules = RuleSet("FloatingIP", services=["master"])

    @rules.rule(
        "FloatingIP: the master on this host goes ONLINE",
        c.ds << datasource(role="master", state="ONLINE", local=True),
        c.policy << active_policy(),
        c.vip << service("master", held=False),
    )
    def master_online(ctx: RuleContext) -> None:
        ctx.start("master", datasource=ctx.ds.name)

The conditions (:func:`datasource`, :func:`service`, :func:`policy`, :func:`active_policy`,
:func:`manager_running`, :func:`manager_stopping`) match fields by equality, :func:`one_of`
(membership) or :func:`other_than` (inequality), another fact's field (``name=c.vip.holder``),
and ``unless=`` (not all of these); durable_rules' ``m`` DSL stays available for the rest.

Consequences do not run commands themselves: they ask for service actions (``ctx.start``,
``ctx.stop``, ``ctx.run``), which the Manager runs once the rules engine has returned, one at a
time, and records.  The facts a rule can match, and the conditions, are in
:mod:`floatingip.conditions`; import them from here.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import inspect
import logging
import shutil
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from durable.lang import c, m, none, when_all

from floatingip.conditions import (
    Condition,
    Fact,
    Matcher,
    active_policy,
    datasource,
    manager_running,
    manager_stopping,
    one_of,
    other_than,
    policy,
    service,
)
from floatingip.config import name_problem, trusted_directory
from floatingip.errors import ConfigError, Problem, RuleFileError
from floatingip.trusted import TrustedDirectory
from floatingip.vocabulary import Action as ServiceAction

__all__ = [
    "Condition",
    "Fact",
    "Matcher",
    "Rule",
    "RuleContext",
    "RuleSet",
    "RulesInstalledError",
    "active_policy",
    "c",
    "datasource",
    "install_rules",
    "load_rule_file",
    "load_rules",
    "m",
    "manager_running",
    "manager_stopping",
    "none",
    "one_of",
    "other_than",
    "policy",
    "service",
    "shipped_rules_dir",
]

logger = logging.getLogger(__name__)

Action = Callable[["RuleContext"], None]
_ACTIONS = tuple(ServiceAction)
MAX_RULE_FILE_SIZE = 1 << 20  # a rule file is Python source: compiled whole, so bounded too
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


def _module_name(path: Path) -> str:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    return f"floatingip_rule_file_{path.stem.replace('-', '_')}_{digest}"


def _error_line(path: Path, exc: BaseException) -> int | None:
    if isinstance(exc, SyntaxError) and exc.filename and Path(exc.filename) == path:
        return exc.lineno
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename and Path(frame.filename) == path:
            line = frame.lineno
    return line


def _import(path: Path, source: bytes) -> tuple[ModuleType | None, list[Problem]]:
    """Run ``source`` (the file's bytes, already read through checked directories) as a module.

    Compiled from those bytes, not re-opened by path, so what runs is what was checked.  Any
    exception, SystemExit included, becomes a problem; KeyboardInterrupt still interrupts.
    """
    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        return None, [Problem(path, None, "cannot be imported as a Python module")]
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        exec(compile(source, str(path), "exec", dont_inherit=True), module.__dict__)
    except KeyboardInterrupt:
        sys.modules.pop(name, None)
        raise
    except BaseException as exc:  # a rule file must not exit or stop the process loading it
        sys.modules.pop(name, None)
        detail = str(exc)
        message = f"failed to load: {type(exc).__name__}" + (f": {detail}" if detail else "")
        if isinstance(exc, SyntaxError):
            message = f"syntax error: {exc.msg}"
        return None, [Problem(path, _error_line(path, exc), message)]
    return module, []


def _is_rule_file(name: str) -> bool:
    return not name.startswith(("_", "."))


def _load_from(directory: TrustedDirectory, name: str) -> list[RuleSet]:
    path = directory.path / name
    try:
        source, problems = directory.read(name, "rule file", MAX_RULE_FILE_SIZE)
    except ConfigError as exc:
        raise RuleFileError(exc.problems) from None
    if problems:
        raise RuleFileError(problems)
    module, problems = _import(path, source)
    if module is None:
        raise RuleFileError(problems)
    rulesets = [value for value in vars(module).values() if isinstance(value, RuleSet)]
    if not rulesets:
        raise RuleFileError([Problem(path, None, "defines no RuleSet (see floatingip.rules)")])
    for ruleset in rulesets:
        if not ruleset.rules:
            raise RuleFileError([Problem(path, None, f"ruleset {ruleset.name!r} has no rules")])
        ruleset.path = path
    return rulesets


def load_rule_file(path: str | Path) -> list[RuleSet]:
    """Import one rule file and return the RuleSets it defines; RuleFileError if it cannot.

    The file and every directory above it are checked as service files are (floatingip.trusted),
    and the bytes checked are the bytes compiled.  Whatever the file raises while it is imported,
    ``SystemExit`` included, becomes a RuleFileError naming the file and line; only
    ``KeyboardInterrupt`` propagates, so that Ctrl-C still stops a program loading rules.
    """
    path = Path(path).absolute()
    with trusted_directory(path.parent, "rules directory", RuleFileError) as directory:
        return _load_from(directory, path.name)


def load_rules(directory: str | Path) -> list[RuleSet]:
    """Load every ``*.py`` rule file of ``directory`` in sorted order, as Tungsten loads ``.drl``.

    Every problem of every file is reported in one RuleFileError, including two files that
    define a ruleset of the same name.
    """
    directory = Path(directory).absolute()
    if directory.is_file():
        raise RuleFileError(
            [
                Problem(
                    directory,
                    None,
                    "is a file, not a rules directory (which holds *.py rule files)",
                )
            ]
        )
    if not directory.is_dir():
        raise RuleFileError([Problem(directory, None, "rules directory does not exist")])
    problems: list[Problem] = []
    loaded: dict[str, RuleSet] = {}
    with trusted_directory(directory, "rules directory", RuleFileError) as trusted:
        names = [name for name in trusted.names(".py") if _is_rule_file(name)]
        if not names:
            problems.append(Problem(directory, None, "rules directory holds no rule files (*.py)"))
        for name in names:
            path = directory / name
            try:
                rulesets = _load_from(trusted, name)
            except RuleFileError as exc:
                problems.extend(exc.problems)
                continue
            for ruleset in rulesets:
                other = loaded.get(ruleset.name)
                if other is not None:
                    problems.append(
                        Problem(
                            path, None, f"ruleset {ruleset.name!r} is also defined in {other.path}"
                        )
                    )
                    continue
                loaded[ruleset.name] = ruleset
    if problems:
        raise RuleFileError(problems)
    logger.info("loaded rulesets %s from %s", ", ".join(loaded), directory)
    return list(loaded.values())


def shipped_rules_dir() -> Path:
    """The directory of the rule files that ship with floatingip (``FloatingIP.py``).

    Installed, that is the package ``floatingip.shipped_rules``.  Imported from a source tree
    (Python started in the repository root shadows any install with the ``floatingip`` folder,
    which has no ``shipped_rules``), it is the tree's top-level ``rules/``.
    """
    try:
        return Path(str(importlib.resources.files("floatingip.shipped_rules")))
    except ModuleNotFoundError:
        source_tree_rules = Path(__file__).resolve().parent.parent / "rules"
        if (source_tree_rules / "FloatingIP.py").is_file():
            return source_tree_rules
        raise


class RulesInstalledError(RuleFileError):
    """install_rules found the rule files already there; ``existing`` lists them."""

    summary = "rule files already installed"

    def __init__(self, existing: Iterable[Path]) -> None:
        self.existing = tuple(existing)
        super().__init__(
            Problem(path, None, "already exists; pass overwrite=True to replace it")
            for path in self.existing
        )


def install_rules(directory: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Copy the shipped rule files into ``directory`` (the seed's step 3); return the copies.

    Unless ``overwrite``, an existing copy raises RulesInstalledError before anything is copied;
    the copies are made mode 0644.
    """
    directory = Path(directory)
    sources = [
        path
        for path in sorted(shipped_rules_dir().glob("*.py"))
        if path.is_file() and _is_rule_file(path.name)
    ]
    existing = [directory / source.name for source in sources if (directory / source.name).exists()]
    if existing and not overwrite:
        raise RulesInstalledError(existing)
    directory.mkdir(parents=True, exist_ok=True)
    installed = []
    for source in sources:
        target = directory / source.name
        shutil.copyfile(source, target)
        target.chmod(0o644)
        installed.append(target)
    return installed
