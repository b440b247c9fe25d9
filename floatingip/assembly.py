"""The Manager's constructor arguments, every one checked (floatingip.validation) before anything
is built, started or run: a wrong one is a FloatingIPError naming it, and nothing changes."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from floatingip import facts
from floatingip.cluster import initial_roles_and_states
from floatingip.commands import Executor, LocalExecutor
from floatingip.datasource import (
    DataSource,
    PolicyMode,
    Role,
    State,
    load_datasources,
    parse_policy,
)
from floatingip.errors import ConfigError, Problem, UsageError
from floatingip.fence import Fence
from floatingip.rule_files import load_rules, shipped_rules_dir
from floatingip.ruleset import RuleSet
from floatingip.service import ACTIONS, ServiceDefinition, load_services
from floatingip.supervisor import RetryPolicy
from floatingip.validation import (
    check_fact_identities,
    check_instance,
    check_items,
    check_mapping,
    check_name,
    check_optional_name,
    check_path,
)
from floatingip.vocabulary import Action

__all__ = ["Arguments", "check_action", "check_arguments", "check_host", "load_cluster_home"]


@dataclass(frozen=True, kw_only=True)
class Arguments:
    """What the Manager is built from, checked; ``executors`` has this host's too."""

    cluster: str
    host: str
    executor: Executor
    executors: dict[str, Executor]
    services: dict[str, ServiceDefinition]
    rulesets: list[RuleSet]
    declared: list[DataSource]
    roles: dict[str, Role]
    states: dict[str, State]
    policy: PolicyMode
    history_size: int
    retry: RetryPolicy
    fence: Fence | None
    failsafe: bool


def check_arguments(
    *,
    cluster: object,
    services: object,
    rulesets: object,
    datasources: object,
    host: object,
    executor: object,
    executors: object,
    policy: PolicyMode | str,
    history_size: object,
    roles: Mapping[str, Role | str] | None,
    states: Mapping[str, State | str] | None,
    reconcile_at_start: object,
    retry: object,
    fence: object,
    failsafe: object = True,
) -> Arguments:
    """The Manager's arguments (but monitor_interval, which its Supervisor checks), checked."""
    cluster = check_name(cluster, "cluster")
    host = check_optional_name(host, "host", UsageError)
    # os.uname's node name is what socket.gethostname() returns, without socket (0.4 MB of RSS)
    host = host if host is not None else check_name(os.uname().nodename, "this host")
    this: Executor = (
        LocalExecutor()
        if executor is None
        else check_instance(executor, Executor, "executor", "an Executor (with a run method)")
    )
    # Other hosts this manager may act for, each through its own executor (a namespace, ssh).
    executors_by_host: dict[str, Executor] = {
        check_name(other, "host", UsageError): check_instance(
            runner, Executor, f"the executor of host {other!r}", "an Executor"
        )
        for other, runner in check_mapping(executors, "executors", optional=True).items()
    }
    executors_by_host.setdefault(host, this)
    checked_services = {
        check_name(name, "service", UsageError): check_instance(
            service, ServiceDefinition, f"service {name!r}", "a ServiceDefinition"
        )
        for name, service in check_mapping(services, "services").items()
    }
    checked_rulesets = check_items(rulesets, RuleSet, "rulesets", "RuleSet")
    _check_rules_have_their_services(cluster, checked_rulesets, checked_services)
    declared = check_items(datasources, DataSource, "datasources", "DataSource")
    initial_roles, initial_states = initial_roles_and_states(declared, roles, states)
    parsed_policy = parse_policy(policy)
    history_size = check_instance(history_size, int, "history_size", "a whole number")
    if history_size < 0:
        raise UsageError(f"history_size must be 0 or more, not {history_size}")
    if retry is not None:
        check_instance(retry, RetryPolicy, "retry", "a RetryPolicy")
    if fence is not None:
        check_instance(fence, Fence, "fence", "a Fence (with acquire and release methods)")
    check_instance(reconcile_at_start, bool, "reconcile_at_start", "True or False")
    checked_failsafe = check_instance(failsafe, bool, "failsafe", "True or False")
    check_fact_identities(
        [
            (facts.MANAGER, None),
            (facts.POLICY, None),
            *((facts.service_fact(n, None)["id"], s.path) for n, s in checked_services.items()),
            *((facts.datasource_fact(ds, None, ())["id"], ds.path) for ds in declared),
        ]
    )
    return Arguments(
        cluster=cluster,
        host=host,
        executor=this,
        executors=executors_by_host,
        services=checked_services,
        rulesets=checked_rulesets,
        declared=declared,
        roles=initial_roles,
        states=initial_states,
        policy=parsed_policy,
        history_size=history_size,
        retry=retry if isinstance(retry, RetryPolicy) else RetryPolicy(),
        fence=fence if isinstance(fence, Fence) else None,
        failsafe=checked_failsafe,
    )


def _check_rules_have_their_services(
    cluster: str, rulesets: Iterable[RuleSet], services: Mapping[str, ServiceDefinition]
) -> None:
    problems = [
        Problem(
            ruleset.path,
            None,
            f"ruleset {ruleset.name!r} acts on service {needed!r}, which cluster "
            f"{cluster!r} does not define (service/{needed}.properties)",
        )
        for ruleset in rulesets
        for needed in ruleset.services
        if needed not in services
    ]
    if problems:
        raise ConfigError(problems)


# What from_cluster_home loads or takes itself: the other keywords of the constructor are options.
_NOT_OPTIONS = frozenset(
    {"cluster", "services", "datasources", "rulesets", "host", "executor", "executors", "fence"}
)


def load_cluster_home(
    cluster_home: object,
    cluster: object,
    rules_dir: object,
    options: Mapping[str, Any],
    constructor: Callable[..., object],
) -> dict[str, Any]:
    """The constructor's arguments from a cluster home: its services and datasources, the rule
    files of ``rules_dir`` (None: the shipped ones), and ``options``, which must be keywords of
    ``constructor`` (the Manager) that are none of those."""
    home = check_path(cluster_home, "cluster_home")
    name = check_name(cluster, "cluster")
    rules = check_path(rules_dir, "rules_dir") if rules_dir is not None else None
    known = frozenset(inspect.signature(constructor).parameters) - _NOT_OPTIONS
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise UsageError(
            f"unknown option(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}"
        )
    return {
        "cluster": name,
        "services": load_services(home, name),
        "datasources": load_datasources(home, name).values(),
        "rulesets": load_rules(rules if rules is not None else shipped_rules_dir()),
        **options,
    }


def check_action(action: str) -> Action:
    """``action`` (a str: checked by the caller) as an Action; UsageError if it is none."""
    if action not in ACTIONS:
        raise UsageError(f"unknown action {action!r}; expected start, stop, restart, status")
    return Action(action)


def check_host(host: str, hosts: Collection[str]) -> str:
    """``host``, if it is one of ``hosts`` (those a manager acts for); UsageError otherwise."""
    if host not in hosts:
        raise UsageError(f"unknown host {host!r}: this manager acts for {', '.join(sorted(hosts))}")
    return host
