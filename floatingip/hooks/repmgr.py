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
- during ``repmgr standby switchover`` (run on the new primary) repmgr reaches the old primary
  by ssh and runs ``repmgr node service --action=stop --checkpoint`` there (its
  ``service_stop_command``), then ``standby_promote`` and ``standby_switchover`` are notified
  on the new primary; the old one rejoins with ``repmgr node rejoin --no-wait``, which notifies
  nothing when it succeeds (repmgr-action-node.c).  So no notification ever reaches the old
  primary: the only moment it can release the VIP is its stop, and ``service_stop`` (not a
  repmgr event: floatingip's, for ``service_stop_command``) does that.  Without it the VIP
  stays on the old primary, now a standby, and both starts on the new one are refused (seen
  with repmgr 5.3.3);
- a failed notification command is a warning in repmgr's log, nothing more.
"""

from __future__ import annotations

import argparse

from floatingip.datasource import Role, State
from floatingip.errors import UsageError
from floatingip.hooks.core import HookContext, Plan, find_datasource

__all__ = ["PRIMARY_EVENTS", "STANDBY_EVENTS", "STOP_EVENT", "add_arguments", "plan"]

# This node is now the primary (when the event succeeded).
PRIMARY_EVENTS = frozenset(
    {"primary_register", "standby_promote", "repmgrd_failover_promote", "standby_switchover"}
)
# This node is a standby, whether or not the event succeeded: it must not carry the VIP.
STANDBY_EVENTS = frozenset(
    {"node_rejoin", "standby_follow", "repmgrd_failover_follow", "standby_register"}
)
# floatingip's, from service_stop_command: this node's PostgreSQL is stopped (or stopping).
STOP_EVENT = "service_stop"


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
    stop = args.event_type == STOP_EVENT
    if args.event_type not in PRIMARY_EVENTS and not standby and not stop:
        return Plan(event=event, why=f"{args.event_type} does not move the primary")
    if args.event_type in PRIMARY_EVENTS and args.success != "1":
        return Plan(event=event, why=f"{args.event_type} failed: the primary did not move")
    names = [args.datasource] if args.datasource else [context.this_host]
    datasource = find_datasource(context.datasources(), names=names, what=event)
    if stop:
        return Plan.change(event, datasource, state=State.OFFLINE, why="its server is stopped")
    if standby:
        return Plan.change(event, datasource, Role.SLAVE, State.ONLINE, why="it is a standby")
    return Plan.change(event, datasource, Role.MASTER, State.ONLINE, why="it is the primary")
