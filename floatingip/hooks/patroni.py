"""Patroni's callbacks: ``postgresql.callbacks.on_start`` etc. name a command to which Patroni
appends ``<action> <role> <scope>`` and runs without a shell (``shlex.split(command) + [...]``).

The facts, from Patroni's source (patroni/postgresql/__init__.py, callback_executor.py):

- actions: on_start, on_stop, on_restart, on_reload, on_role_change;
- the role passed is ``primary`` from Patroni 4.0 (``master`` before; 3.0.0 alone passed
  ``promoted`` on promotion, fixed in 3.0.1), ``replica``, ``standby_leader``, ``demoted``
  or ``uninitialized``;
- one callback runs at a time: before starting the next, Patroni suspends the one still running
  and kills it and its children with SIGKILL (its documentation says only that the action, role
  and cluster name are passed).  A killed hook leaves the lock to the kernel, and the next one
  reconciles what is held, so nothing is lost.  Through sudo the hook is root's and Patroni
  cannot kill it: every call is ``cancelled_by_later`` (floatingip.hooks.order), so one that
  outlived its cancellation does nothing after the call that replaced it.
"""

from __future__ import annotations

import argparse

from floatingip.datasource import Role, State
from floatingip.errors import UsageError
from floatingip.hooks.core import HookContext, Plan, find_datasource

__all__ = ["ACTIONS", "LEADER_ROLES", "OTHER_ROLES", "add_arguments", "plan"]

ACTIONS = ("on_start", "on_stop", "on_restart", "on_reload", "on_role_change")
LEADER_ROLES = frozenset({"primary", "master", "promoted"})
# A standby cluster's leader replicates from elsewhere and is read-only: no write VIP.
OTHER_ROLES = frozenset({"replica", "standby_leader", "demoted", "uninitialized"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--datasource", help="this node's datasource (default: the one whose host is --host)"
    )
    parser.add_argument("action", metavar="ACTION", help="what Patroni did: " + ", ".join(ACTIONS))
    parser.add_argument("role", metavar="ROLE", help="this node's role (primary, replica, ...)")
    parser.add_argument("scope", metavar="SCOPE", help="Patroni's cluster name")


def plan(args: argparse.Namespace, context: HookContext) -> Plan:
    event = f"patroni {args.action} {args.role} {args.scope}"
    if args.action not in ACTIONS:
        return Plan(event=event, why=f"action {args.action!r} does not move the VIP")
    if args.action == "on_reload":
        return Plan(event=event, why="a reload changes no role")
    if args.role not in LEADER_ROLES | OTHER_ROLES:
        known = ", ".join(sorted(LEADER_ROLES | OTHER_ROLES))
        raise _unknown_role(args.role, known)
    names = [args.datasource] if args.datasource else [context.this_host]
    datasource = find_datasource(context.datasources(), names=names, what=event)
    # Patroni cancels a running callback for the next one: this call must never act after it
    if args.action == "on_stop":
        return Plan.change(
            event, datasource, state=State.OFFLINE, why="it stopped", cancelled_by_later=True
        )
    role, why = (
        (Role.MASTER, "it is the primary")
        if args.role in LEADER_ROLES
        else (Role.SLAVE, f"it is a {args.role}")
    )
    return Plan.change(event, datasource, role, State.ONLINE, why=why, cancelled_by_later=True)


def _unknown_role(role: str, known: str) -> UsageError:
    return UsageError(f"unknown Patroni role {role!r} (known: {known}); nothing was changed")
