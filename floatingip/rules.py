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

from durable.lang import c, m, none

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
from floatingip.rule_files import (
    RulesInstalledError,
    install_rules,
    load_rule_file,
    load_rules,
    shipped_rules_dir,
)
from floatingip.ruleset import Intent as Intent  # internal (not in __all__): engine, dispatch
from floatingip.ruleset import Rule, RuleContext, RuleSet

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
