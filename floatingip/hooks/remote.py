"""The hooks' ssh options: MHA and orchestrator run their hooks on the manager host, which
reaches the database hosts with ssh (floatingip.ssh), as their own steps do.

``--ssh`` turns it on: a host that is neither this machine nor given with ``--netns`` is reached
with ``ssh``.  Without it nothing changes: such a host cannot be reached and the hook says so.
Explicit options win over what the tool passes (MHA's ``--ssh_user``, ``--..._ssh_port``,
``--ssh_options``), which win over ssh's own defaults and configuration.
"""

from __future__ import annotations

import argparse
import re

from floatingip.errors import UsageError
from floatingip.ssh import SshTarget

__all__ = ["add_ssh_arguments", "ssh_target"]

_OPTION = re.compile(r"[A-Za-z][A-Za-z0-9]*[= ]\S.*")


def add_ssh_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("reaching the database hosts with ssh")
    group.add_argument(
        "--ssh",
        action="store_true",
        help="reach a host that is not this machine (nor given with --netns) with the system's "
        "ssh client, BatchMode=yes: its configuration, keys and known_hosts apply",
    )
    group.add_argument(
        "--ssh-user",
        dest="own_ssh_user",
        metavar="USER",
        help="log in as USER (default: the tool's, else ssh's); a USER other than root runs "
        "the VIP commands there with sudo -n (`floatingip sudoers --user USER`)",
    )
    group.add_argument(
        "--ssh-port",
        dest="own_ssh_port",
        type=int,
        metavar="PORT",
        help="default: the tool's, or 22",
    )
    group.add_argument(
        "--ssh-key", dest="own_ssh_key", metavar="FILE", help="the private key (ssh -i)"
    )
    group.add_argument(
        "--ssh-config",
        dest="own_ssh_config",
        metavar="FILE",
        help="ssh's configuration file (ssh -F)",
    )
    group.add_argument(
        "--ssh-option",
        dest="own_ssh_option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an ssh option (ssh -o NAME=VALUE); repeatable",
    )
    group.add_argument(
        "--ssh-connect-timeout",
        dest="own_ssh_connect_timeout",
        type=int,
        default=5,
        metavar="SECONDS",
        help="give up connecting after SECONDS (ssh's ConnectTimeout; default 5)",
    )


def ssh_target(args: argparse.Namespace) -> SshTarget | None:
    """The ssh settings the options give; None without ``--ssh``."""
    # own_: MHA passes --ssh_user and --ssh_options, which argparse would give the same names
    given = [name for name in ("user", "port", "key", "config", "option") if _own(args, name)]
    if not args.ssh:
        if given:
            option = f"--ssh-{given[0]}"
            raise UsageError(f"{option} is used only with --ssh")
        return None
    options: list[str] = []
    if args.own_ssh_config:
        options += ["-F", args.own_ssh_config]
    for option in args.own_ssh_option:
        if not _OPTION.fullmatch(option):
            raise UsageError(f"--ssh-option takes NAME=VALUE (as ssh -o does), not {option!r}")
        options += ["-o", option]
    timeout = args.own_ssh_connect_timeout
    if timeout <= 0:
        raise UsageError(f"--ssh-connect-timeout must be positive, not {timeout}")
    return SshTarget(
        user=args.own_ssh_user,
        port=args.own_ssh_port,
        identity=args.own_ssh_key,
        options=tuple(options),
        connect_timeout=timeout,
    )


def _own(args: argparse.Namespace, name: str) -> object:
    return getattr(args, f"own_ssh_{name}")
