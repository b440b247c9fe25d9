"""The ``floatingip`` command."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from floatingip import __version__
from floatingip.errors import FloatingIPError
from floatingip.rules import install_rules, load_rules
from floatingip.service import ACTIONS, load_services

__all__ = ["main"]


def _services(args: argparse.Namespace) -> int:
    services = load_services(args.cluster_home, args.cluster)
    if not services:
        print(f"cluster {args.cluster!r}: no service definitions")
        return 0
    for service in services.values():
        print(f"service {service.name!r} ({service.path}), timeout {service.timeout:g}s")
        for action in ACTIONS:
            command = service.commands[action]
            if command is None:
                print(f"  {action:<8} (not defined)")
                continue
            print(f"  {action:<8} {command}")
            print(f"  {'':<8} argv: {list(service.argv(action))}")
            print(f"  {'':<8} runs: {shlex.join(service.argv(action))}")
    return 0


def _install_rules(args: argparse.Namespace) -> int:
    for path in install_rules(args.directory, overwrite=args.force):
        print(f"installed {path}")
    for ruleset in load_rules(args.directory):
        print(f"ruleset {ruleset.name!r} ({ruleset.path}): {len(ruleset.rules)} rules")
        for rule in ruleset.rules:
            print(f"  {rule.name}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="floatingip",
        description="A floating IP address that follows a database cluster's master.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    services = commands.add_parser(
        "services", help="load a cluster's service definitions and show the argv each action runs"
    )
    services.add_argument("--cluster-home", required=True, help="the cluster-home directory")
    services.add_argument("--cluster", required=True, help="the cluster's name")
    services.set_defaults(handler=_services)
    install = commands.add_parser(
        "install-rules",
        help="copy the shipped rule files (FloatingIP.py) into a manager's rules directory",
    )
    install.add_argument("directory", help="the rules directory (created if missing)")
    install.add_argument("--force", action="store_true", help="replace existing files")
    install.set_defaults(handler=_install_rules)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except FloatingIPError as exc:
        print(f"floatingip: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
