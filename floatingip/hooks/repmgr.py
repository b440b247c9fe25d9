"""repmgr's ``event_notification_command``: repmgr replaces its placeholders in the configured
line and runs it through ``/bin/sh -c`` (``system()``), synchronously: repmgr waits for it.

The facts, from repmgr's source (dbutils.c ``_create_event``, repmgr-action-standby.c,
repmgrd-physical.c):

- ``%n`` node id, ``%e`` event, ``%s`` 1 or 0, ``%t`` timestamp, ``%d`` details (only double
  quotes are escaped: ``$`` and backticks in it would reach the shell, so floatingip does not
  need it and the recommended line leaves it out), ``%p``, ``%c``, ``%a`` for a few events;
- every event that moves the primary is notified on the node it concerns, with that node's id:
  ``standby_promote``, ``repmgrd_failover_promote`` and ``standby_switchover`` on the new
  primary, ``node_rejoin``, ``standby_follow`` and ``repmgrd_failover_follow`` on a standby;
- during ``repmgr standby switchover`` the order is: the old primary is stopped,
  ``standby_promote`` is notified on the new one, ``node_rejoin`` on the old one (over ssh),
  ``standby_switchover`` on the new one.  So at ``standby_promote`` the old primary still
  carries the VIP: the start is refused (another host answers for it) and this hook exits 1,
  which repmgr only logs; ``standby_switchover`` takes the VIP once the old host released it;
- a failed notification command is a warning in repmgr's log, nothing more.
"""

from __future__ import annotations

import argparse

from floatingip.datasource import Role, State
from floatingip.errors import UsageError
from floatingip.hooks.core import HookContext, Plan, find_datasource

__all__ = ["PRIMARY_EVENTS", "STANDBY_EVENTS", "add_arguments", "plan"]

# This node is now the primary (when the event succeeded).
PRIMARY_EVENTS = frozenset(
    {"primary_register", "standby_promote", "repmgrd_failover_promote", "standby_switchover"}
)
# This node is a standby, whether or not the event succeeded: it must not carry the VIP.
STANDBY_EVENTS = frozenset(
    {"node_rejoin", "standby_follow", "repmgrd_failover_follow", "standby_register"}
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--datasource", help="this node's datasource (default: the one whose host is --host)"
    )
    parser.add_argument(
        "--node-id", type=int, help="this node's repmgr node_id: events of other nodes are ignored"
    )
    parser.add_argument("node", metavar="NODE_ID", help="%%n: the node id")
    parser.add_argument("event_type", metavar="EVENT", help="%%e: the event")
    parser.add_argument("success", metavar="SUCCESS", help="%%s: 1 or 0")
    parser.add_argument("extra", metavar="...", nargs="*", help='"%%t" "%%d" if given: ignored')


def plan(args: argparse.Namespace, context: HookContext) -> Plan:
    if not args.node.isdigit():
        raise UsageError(f"repmgr node id must be a number (%n), not {args.node!r}")
    if args.success not in ("0", "1"):
        raise UsageError(f"repmgr success must be 1 or 0 (%s), not {args.success!r}")
    event = f"repmgr {args.event_type} node {args.node} success {args.success}"
    if args.node_id is not None and int(args.node) != args.node_id:
        return Plan(event=event, why=f"an event of node {args.node}, not of this node")
    standby = args.event_type in STANDBY_EVENTS
    if args.event_type not in PRIMARY_EVENTS and not standby:
        return Plan(event=event, why=f"{args.event_type} does not move the primary")
    if not standby and args.success != "1":
        return Plan(event=event, why=f"{args.event_type} failed: the primary did not move")
    names = [args.datasource] if args.datasource else [context.this_host]
    datasource = find_datasource(context.datasources(), names=names, what=event)
    if standby:
        return Plan.change(event, datasource, Role.SLAVE, State.ONLINE, why="it is a standby")
    return Plan.change(event, datasource, Role.MASTER, State.ONLINE, why="it is the primary")
