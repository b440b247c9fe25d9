"""orchestrator's recovery hooks (``PreFailoverProcesses``, ``PostMasterFailoverProcesses``, ...):
orchestrator replaces ``{placeholders}`` in each configured line by plain text substitution and
runs it with bash on the orchestrator host.

The facts, from orchestrator's source (go/logic/topology_recovery.go ``prepareCommand``,
``executeProcesses``, ``GracefulMasterTakeover``):

- ``{successorHost}`` (and ``{successorPort}``, ``{successorAlias}``) are replaced only when a
  successor was promoted: otherwise the literal text ``{successorHost}`` reaches the hook;
- ``{isSuccessful}`` is ``true`` or ``false``; ``{failureType}`` is the analysis
  (``DeadMaster``, ``DeadMasterAndSomeReplicas``, ``DeadIntermediateMaster``, ...);
- a Pre hook (``PreFailoverProcesses``, ``PreGracefulTakeoverProcesses``) that exits non-zero
  aborts the recovery; Post hooks' failures are only logged;
- a graceful takeover runs its Pre hook with ``{failureType}`` ``DeadMaster`` and the demoted
  master as ``{failedHost}``, then the usual recovery hooks (PreFailover, PostMasterFailover,
  PostFailover), then ``PostGracefulTakeoverProcesses``.
"""

from __future__ import annotations

import argparse

from floatingip.datasource import Role, State
from floatingip.errors import UsageError
from floatingip.hooks.core import EXIT_DONE, HookContext, Plan, find_datasource
from floatingip.hooks.remote import add_ssh_arguments

__all__ = ["HOOKS", "POST_HOOKS", "PRE_HOOKS", "add_arguments", "plan"]

PRE_HOOKS = frozenset({"PreFailoverProcesses", "PreGracefulTakeoverProcesses"})
POST_HOOKS = frozenset(
    {"PostMasterFailoverProcesses", "PostFailoverProcesses", "PostGracefulTakeoverProcesses"}
)
HOOKS = (
    PRE_HOOKS
    | POST_HOOKS
    | {
        "OnFailureDetectionProcesses",
        "PostIntermediateMasterFailoverProcesses",
        "PostUnsuccessfulFailoverProcesses",
    }
)
_NO_SUCCESSOR = "{successorHost}"  # left as it is when no replica was promoted


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "hook",
        metavar="HOOK",
        help="the configuration key this line is in: " + ", ".join(sorted(HOOKS)),
    )
    parser.add_argument("--failure-type", required=True, help="{failureType}")
    parser.add_argument("--failed-host", required=True, help="{failedHost}")
    parser.add_argument("--successor-host", help="{successorHost}")
    parser.add_argument("--is-successful", help="{isSuccessful}")
    add_ssh_arguments(parser)  # no ssh settings among its placeholders: --ssh-user and the rest


def plan(args: argparse.Namespace, context: HookContext) -> Plan:
    if args.hook not in HOOKS:
        known = ", ".join(sorted(HOOKS))
        raise UsageError(f"unknown orchestrator hook {args.hook!r} (known: {known})")
    if args.is_successful not in (None, "true", "false"):
        raise UsageError(f"--is-successful must be true or false, not {args.is_successful!r}")
    successor = args.successor_host if args.successor_host != _NO_SUCCESSOR else None
    event = (
        f"orchestrator {args.hook} {args.failure_type} failed {args.failed_host} "
        f"successor {successor or '-'}"
    )
    master_failure = args.failure_type.startswith(("DeadMaster", "DeadCoMaster"))
    if not master_failure:
        return Plan(event=event, why=f"{args.failure_type} is not a failure of the master")
    datasources = context.datasources()
    if args.hook in PRE_HOOKS:
        failed = find_datasource(datasources, names=[args.failed_host], what=f"{event}: failed")
        # A failure here would abort the recovery of a master that is often really gone: go on
        # and let the successor's start check that nobody answers for the VIP.
        return Plan.change(
            event, failed, state=State.OFFLINE, why="it failed", failure_exit=EXIT_DONE
        )
    if args.hook not in POST_HOOKS:
        return Plan(event=event, why=f"{args.hook} does not move the master")
    if args.is_successful != "true" or successor is None:
        return Plan(event=event, why="no replica was promoted")
    new = find_datasource(datasources, names=[successor], what=f"{event}: successor")
    return Plan.change(event, new, Role.MASTER, State.ONLINE, why="it is the new master")
