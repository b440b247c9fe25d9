"""MHA's ``master_ip_failover_script`` and ``master_ip_online_change_script``: MHA appends its
options to the configured line and runs it through ``/bin/sh -c`` on the manager host.

The facts, from mha4mysql-manager 0.58's source (MasterMonitor.pm, MasterFailover.pm,
MasterRotate.pm, Server.pm ``get_ssh_args_if``):

- ``--command=status`` when the monitor starts (non-zero: MHA refuses to start), with
  ``--ssh_user --orig_master_host --orig_master_ip --orig_master_port``;
- failover: ``--command=stopssh --ssh_user=U`` when the dead master is still reachable by ssh,
  else ``--command=stop`` (no ``--ssh_user``), with the ``--orig_master_*`` options; then
  ``--command=start`` with ``--ssh_user``, ``--orig_master_*``, ``--new_master_host/ip/port``,
  ``--new_master_user`` and ``--new_master_password`` (on the command line: visible in ``ps``);
- online switch: ``--command=stop`` then ``--command=start``, each with ``--orig_master_*`` and
  ``--new_master_*`` (users and passwords), ``--orig_master_ssh_user``,
  ``--new_master_ssh_user`` and ``--orig_master_is_new_slave`` when asked;
- ``--{orig,new}_master_ssh_host/_ssh_ip`` when the ssh address differs, ``..._ssh_port`` when
  not 22, ``--ssh_options='...'`` when set;
- exit status: 0 done; 10 "failed, proceed anyway" (a stop or start that exits 10 is logged and
  the switch goes on); anything else aborts the failover or the switch.  The sample scripts'
  usage line lists only start|stop|stopssh|status.

Passwords are accepted and never logged or used.
"""

from __future__ import annotations

import argparse
import shlex

from floatingip.datasource import Role, State
from floatingip.errors import UsageError
from floatingip.hooks.core import EXIT_FAILED, HookContext, Plan, find_datasource
from floatingip.hooks.remote import add_ssh_arguments
from floatingip.ssh import SshTarget

__all__ = ["COMMANDS", "EXIT_PROCEED", "add_arguments", "plan"]

COMMANDS = ("start", "stop", "stopssh", "status")
EXIT_PROCEED = 10  # MHA: the script failed, but the failover goes on

_VALUED = (
    "ssh_user", "ssh_options",
    "orig_master_host", "orig_master_ip", "orig_master_port", "orig_master_user",
    "orig_master_password", "orig_master_ssh_user", "orig_master_ssh_host", "orig_master_ssh_ip",
    "orig_master_ssh_port",
    "new_master_host", "new_master_ip", "new_master_port", "new_master_user",
    "new_master_password", "new_master_ssh_user", "new_master_ssh_host", "new_master_ssh_ip",
    "new_master_ssh_port",
)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--command", dest="mha_command", required=True, choices=COMMANDS)
    for name in _VALUED:
        parser.add_argument(f"--{name}", metavar="VALUE", help=argparse.SUPPRESS)
    parser.add_argument("--orig_master_is_new_slave", action="store_true", help=argparse.SUPPRESS)
    add_ssh_arguments(parser)


def plan(args: argparse.Namespace, context: HookContext) -> Plan:
    command = args.mha_command
    event = f"mha {command} orig {args.orig_master_host} new {args.new_master_host or '-'}"
    if args.orig_master_host is None:
        raise UsageError(f"mha --command={command} needs --orig_master_host")
    for option in ("orig_master_port", "new_master_port", "orig_master_ssh_port",
                   "new_master_ssh_port"):  # fmt: skip
        value = getattr(args, option)
        if value is not None and not value.isdigit():
            raise UsageError(f"mha --{option} must be a port number, not {value!r}")
    datasources = context.datasources()
    orig = find_datasource(
        datasources,
        names=[args.orig_master_host, args.orig_master_ip or ""],
        what=f"{event}: --orig_master_host",
    )
    if command == "status":
        return Plan(
            event=event,
            why=f"checking the master's datasource {orig.name}",
            datasource=orig.name,
            host=orig.host,
            check_only=True,
            ssh=_mha_ssh(args, "orig"),
        )
    if command in ("stop", "stopssh"):
        # stop: MHA could not reach the old master by ssh; failing to drop its VIP then must
        # not stop the failover (the new master's start checks that nobody answers for it).
        failure = EXIT_PROCEED if command == "stop" else EXIT_FAILED
        return Plan.change(
            event,
            orig,
            state=State.OFFLINE,
            why="it is no longer the master",
            failure_exit=failure,
            ssh=_mha_ssh(args, "orig"),
        )
    if args.new_master_host is None:
        raise UsageError(f"mha --command=start needs --new_master_host ({event})")
    new = find_datasource(
        datasources,
        names=[args.new_master_host, args.new_master_ip or ""],
        what=f"{event}: --new_master_host",
    )
    return Plan.change(
        event, new, Role.MASTER, State.ONLINE, why="it is the new master", ssh=_mha_ssh(args, "new")
    )


def _mha_ssh(args: argparse.Namespace, which: str) -> SshTarget:
    """How MHA itself reaches the ``orig`` or ``new`` master: its ssh address (``ssh_ip``,
    else ``ip``), user, port and ``ssh_options`` (MHA's defaults and the configured ones)."""

    def given(name: str) -> str | None:
        value: str | None = getattr(args, f"{which}_master_{name}")
        return value or None

    port = given("ssh_port")
    try:
        options = tuple(shlex.split(args.ssh_options or ""))
    except ValueError as exc:
        raise UsageError(f"mha --ssh_options={args.ssh_options!r}: {exc}") from None
    return SshTarget(
        address=given("ssh_ip") or given("ip") or given("ssh_host"),
        user=given("ssh_user") or args.ssh_user or None,
        port=int(port) if port else None,
        options=options,
    )
