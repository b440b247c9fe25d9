"""``floatingip hook patroni|repmgr|mha|orchestrator``: the VIP half of the cluster managers people
already run, as one-shot commands their configuration calls on each event.

Each tool's module maps its arguments to a :class:`~floatingip.hooks.core.Plan`; the core
carries it out (see floatingip.hooks.core).  The hook prints one line on stderr, which the tool
keeps in its log, and exits 0 when done (or when the event needs nothing), non-zero with the
reason otherwise.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from floatingip.commands import LocalExecutor, namespace_executors
from floatingip.config import cluster_problem
from floatingip.errors import FloatingIPError, UsageError
from floatingip.hooks import mha, orchestrator, patroni, repmgr
from floatingip.hooks.core import (
    DEFAULT_LOCK_TIMEOUT,
    EXIT_FAILED,
    HookContext,
    HookLockTimeout,
    Plan,
    Report,
    run_plan,
)
from floatingip.hooks.remote import ssh_target
from floatingip.hooks.timing import Timeline
from floatingip.validation import check_seconds

PATRONI_RELEASE_WAIT = 30.0

__all__ = ["TOOLS", "HookLockTimeout", "Plan", "Report", "add_hook_command", "run_hook"]

Planner = Callable[[argparse.Namespace, HookContext], Plan]
TOOLS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Planner]] = {
    "patroni": (
        "Patroni's on_start/on_stop/on_restart/on_role_change callback (ACTION ROLE SCOPE)",
        patroni.add_arguments,
        patroni.plan,
    ),
    "repmgr": (
        "repmgr's event_notification_command (%%n %%e %%s)",
        repmgr.add_arguments,
        repmgr.plan,
    ),
    "mha": (
        "MHA's master_ip_failover_script and master_ip_online_change_script",
        mha.add_arguments,
        mha.plan,
    ),
    "orchestrator": (
        "orchestrator's recovery hooks (PreFailoverProcesses, PostMasterFailoverProcesses, ...)",
        orchestrator.add_arguments,
        orchestrator.plan,
    ),
}


def add_hook_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Callable[[], list[argparse.ArgumentParser]],
) -> None:
    """``floatingip hook TOOL ...``, one sub-subcommand per tool."""
    hook = subparsers.add_parser(
        "hook",
        help="one-shot hooks for Patroni, repmgr, MHA and orchestrator",
        description="Move the VIP on a cluster manager's event: reconcile, apply the event, "
        "keep the VIP that should stay. One line on stderr; exit 0 when done or when the "
        "event needs nothing, non-zero with the reason otherwise.",
    )
    tools = hook.add_subparsers(dest="tool", required=True, metavar="TOOL")
    for name, (description, add_arguments, _) in TOOLS.items():
        parser = tools.add_parser(
            name, help=description, description=description % {}, parents=parents()
        )
        _add_common(parser, patroni=name == "patroni")
        add_arguments(parser)
        parser.set_defaults(handler=run_hook)


def _add_common(parser: argparse.ArgumentParser, *, patroni: bool) -> None:
    parser.add_argument("--cluster-home", required=True, help="the cluster-home directory")
    parser.add_argument(
        "--cluster",
        required=not patroni,
        help="the cluster's name" + (" (default: Patroni's scope)" if patroni else ""),
    )
    parser.add_argument("--rules-dir", help="the rules directory (default: the shipped rules)")
    parser.add_argument("--host", help="this machine's host name (default: its hostname)")
    parser.add_argument(
        "--netns",
        action="append",
        default=[],
        metavar="HOST=NAMESPACE",
        help="reach HOST by running its commands inside network namespace NAMESPACE",
    )
    parser.add_argument(
        "--lock-dir",
        default="/run/lock",
        help="where the lock that serializes the hooks acting on one host is taken "
        "(floatingip-CLUSTER-HOST.lock; default /run/lock)",
    )
    parser.add_argument(
        "--lock-timeout",
        type=float,
        default=DEFAULT_LOCK_TIMEOUT,
        metavar="SECONDS",
        help=f"give up when another hook holds the lock so long (default {DEFAULT_LOCK_TIMEOUT:g})",
    )
    # Patroni starts the new primary's callback without waiting for the old one's: the old
    # host may still have the VIP for a moment.  The others call the stop first and wait.
    wait = PATRONI_RELEASE_WAIT if patroni else 0.0
    parser.add_argument(
        "--wait-for-release",
        type=float,
        default=wait,
        metavar="SECONDS",
        help="while another host still answers for the VIP, try again this long before "
        f"failing (default {wait:g})",
    )


def run_hook(args: argparse.Namespace) -> int:
    """The ``floatingip hook TOOL`` handler: plan, run, print the line, return the status."""
    timeline = Timeline()
    timeline.mark("imported")
    tool = args.tool
    prefix = f"floatingip hook {tool}"
    _configure_logging(prefix, args.verbose + args.verbose_after)
    try:
        cluster: str = args.cluster or args.scope  # only Patroni's may leave it out
        problem = cluster_problem(args.cluster_home, cluster)
        if problem is not None:
            raise UsageError(problem)
        context = HookContext(
            cluster_home=Path(args.cluster_home),
            cluster=cluster,
            this_host=args.host or socket.gethostname(),
            rules_dir=Path(args.rules_dir) if args.rules_dir else None,
            executors=namespace_executors(args.netns, LocalExecutor()),
            lock_dir=Path(args.lock_dir),
            lock_timeout=check_seconds(args.lock_timeout, "--lock-timeout"),
            release_wait=check_seconds(args.wait_for_release, "--wait-for-release"),
            ssh=ssh_target(args) if hasattr(args, "ssh") else None,  # MHA's, orchestrator's
            timeline=timeline,
        )
        plan = TOOLS[tool][2](args, context)
        timeline.mark("planned")
        report = run_plan(plan, context)
    except FloatingIPError as exc:
        print(f"{prefix}: ERROR: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{prefix}: {report.line}", file=sys.stderr)
    return report.exit_code


def _configure_logging(prefix: str, verbosity: int) -> None:
    # The report line says what happened; the manager's own log is for -v.
    level = {0: logging.ERROR, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{prefix}: %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_DropRepeats())
    logging.basicConfig(level=level, handlers=[handler], force=True)


class _DropRepeats(logging.Filter):
    """Each message once in a row: a start refused every half second while the hook waits for
    another host to release the VIP would otherwise fill the tool's log."""

    def __init__(self) -> None:
        super().__init__()
        self._last: tuple[str, int, str] | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, record.getMessage())
        repeated, self._last = key == self._last, key
        return not repeated
