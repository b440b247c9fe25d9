"""The ``floatingip`` command."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from floatingip import __version__
from floatingip import observe_cli as observe
from floatingip.commands import Executor, LocalExecutor, namespace_executors
from floatingip.config import cluster_problem
from floatingip.errors import FloatingIPError, UsageError
from floatingip.hooks import add_hook_command
from floatingip.manager import Manager
from floatingip.preflight import format_checks, run_checks
from floatingip.rule_files import RulesInstalledError, install_rules, load_rules
from floatingip.service import load_services
from floatingip.services_cli import print_services
from floatingip.shell import Shell, interrupts_for_this_thread_only, is_terminal
from floatingip.shell_hosts import add_unreachable_option, unreachable_after
from floatingip.sudoers import sudo_commands, sudoers_lines
from floatingip.systemd_unit import add_privilege_option, add_systemd_command, apply_privilege
from floatingip.testing import RecordingExecutor, dry_run_responder
from floatingip.validation import check_interval

__all__ = ["main"]


def _require_cluster(args: argparse.Namespace) -> None:
    problem = cluster_problem(args.cluster_home, args.cluster)
    if problem is not None:
        raise UsageError(problem)


def _services(args: argparse.Namespace) -> int:
    _require_cluster(args)
    return print_services(load_services(args.cluster_home, args.cluster), args.cluster)


def _install_rules(args: argparse.Namespace) -> int:
    try:
        installed = install_rules(args.directory, overwrite=args.force)
    except RulesInstalledError as exc:
        for path in exc.existing:
            print(
                f"floatingip: {path}: already installed (the file already exists); "
                "use --force to replace",
                file=sys.stderr,
            )
        return 1
    for path in installed:
        print(f"installed {path}")
    for ruleset in load_rules(args.directory):
        print(f"ruleset {ruleset.name!r} ({ruleset.path}): {len(ruleset.rules)} rules")
        for rule in ruleset.rules:
            print(f"  {rule.name}")
    return 0


def _assignments(specs: Sequence[str], option: str) -> dict[str, str]:
    found = {}
    for spec in specs:
        name, separator, value = spec.partition("=")
        if not separator or not name or not value:
            raise UsageError(f"{option} takes NAME=VALUE, not {spec!r}")
        found[name] = value
    return found


def _converse(shell: Shell, interactive: bool) -> None:
    if interactive:
        shell.run_interactive()
    else:
        shell.run_script(sys.stdin)


def _etcd_shell(args: argparse.Namespace) -> int:
    from floatingip.etcd_client import parse_endpoints
    from floatingip.shell_etcd import EtcdBackend, EtcdShell

    local = [
        option
        for option, given in (
            ("--dry-run", args.dry_run),
            ("--netns", args.netns),
            ("--state", args.state),
            ("--role", args.role),
            ("--monitor", args.monitor is not None),
            ("--host", args.host is not None),
            ("--rules-dir", args.rules_dir is not None),
            ("--metrics", args.metrics is not None),
            ("--unreachable-after", args.unreachable_after is not None),
        )
        if given
    ]
    if local:
        raise UsageError(
            f"{', '.join(local)}: for a shell that runs commands here; with --etcd the "
            "agents run them (floatingip agent), and the state is what etcd says"
        )
    endpoints = parse_endpoints(args.etcd)
    backend = EtcdBackend.from_cluster_home(args.cluster_home, args.cluster, endpoints)
    shell = EtcdShell(backend, stdout=sys.stdout)
    try:
        _converse(shell, is_terminal(sys.stdin))
    finally:
        backend.close()
    return 1 if shell.failures else 0


def _shell(args: argparse.Namespace) -> int:
    _require_cluster(args)
    if args.etcd is not None:
        return _etcd_shell(args)
    out = sys.stdout
    monitor = check_interval(10.0 if args.monitor is None else args.monitor, "--monitor")
    patience = unreachable_after(args)
    base: Executor = RecordingExecutor(dry_run_responder(out)) if args.dry_run else LocalExecutor()
    interactive = is_terminal(sys.stdin)
    metrics = observe.exporter(args.metrics)
    with interrupts_for_this_thread_only() if interactive else contextlib.nullcontext():
        manager = Manager.from_cluster_home(
            args.cluster_home,
            args.cluster,
            rules_dir=args.rules_dir,
            host=args.host,
            executor=base,
            executors=namespace_executors(args.netns, base),
            roles=_assignments(args.role, "--role"),
            states=_assignments(args.state, "--state"),
            reconcile_at_start=not args.dry_run,
            monitor_interval=0 if args.dry_run else monitor,
            unreachable_after=patience,
        )
    metrics.follow(manager)
    shell = Shell(manager, stdout=out)
    try:
        _converse(shell, interactive)
    finally:
        stopped = manager.close()
        metrics.close()
        for outcome in stopped.commands:
            verdict = "released" if outcome.ok else f"FAILED to release ({outcome.error})"
            print(f"manager stopped: {verdict} {outcome.service} on {outcome.host}", file=out)
    return 1 if shell.failures or not stopped.ok else 0


def _check(args: argparse.Namespace) -> int:
    checks = run_checks(
        args.cluster_home, args.cluster, rules_dir=args.rules_dir, db_port=args.db_port
    )
    for line in format_checks(checks):
        print(line)
    return 1 if any(check.failed for check in checks) else 0


def _sudoers(args: argparse.Namespace) -> int:
    _require_cluster(args)
    services = load_services(args.cluster_home, args.cluster)
    lines = sudoers_lines(
        sudo_commands(services), user=args.user, host=args.host, cluster=args.cluster
    )
    print("\n".join(lines))
    return 0


def _verbosity() -> argparse.ArgumentParser:
    # -v before or after the subcommand (`floatingip shell ... -v`): the counts add up
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        dest="verbose_after",
        help="log to stderr (-v info, -vv debug)",
    )
    observe.add_log_format_option(parent, "log_format_after")
    return parent


def _agent(args: argparse.Namespace) -> int:
    import asyncio

    from floatingip.agent import Agent
    from floatingip.etcd_client import parse_endpoints
    from floatingip.etcd_lease import MIN_TTL  # here: asyncio's import would slow every hook
    from floatingip.patroni_source import scope_from_options

    patroni = scope_from_options(args.patroni_scope, args.patroni_namespace)
    if not MIN_TTL <= args.ttl <= 3600:
        raise UsageError(
            f"--ttl must be whole seconds in {MIN_TTL}-3600 (a start needs a margin of 1 s "
            f"before the drop deadline, TTL - margin after a renewal), not {args.ttl}"
        )
    observe.configure_agent_logging(args.verbose + args.verbose_after, observe.log_format(args))
    agent = Agent(
        cluster_home=args.cluster_home,
        cluster=args.cluster,
        host=args.host,
        endpoints=parse_endpoints(args.etcd),
        ttl=args.ttl,
        rules_dir=args.rules_dir,
        monitor_interval=check_interval(args.monitor, "--monitor"),
        patroni=patroni,
        metrics=observe.metrics_address(args.metrics),
    )
    return asyncio.run(agent.run())


def _add_cluster_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster-home", required=True, help="the cluster-home directory")
    parser.add_argument("--cluster", required=True, help="the cluster's name")
    add_privilege_option(parser)


def _add_monitor_option(parser: argparse.ArgumentParser, default: float | None = 10.0) -> None:
    parser.add_argument(
        "--monitor",
        type=float,
        default=default,
        metavar="SECONDS",
        help="compare the VIPs with the facts every SECONDS and repair drift (0: off; default 10)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="floatingip",
        description="A floating IP address that follows a database cluster's master.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log to stderr (-v info, -vv debug)"
    )
    observe.add_log_format_option(parser, "log_format")
    subparsers = parser.add_subparsers(dest="command", required=True)

    def add_command(name: str, description: str) -> argparse.ArgumentParser:
        return subparsers.add_parser(name, help=description, parents=[_verbosity()])

    services = add_command(
        "services", "load a cluster's service definitions and show the argv each action runs"
    )
    _add_cluster_options(services)
    services.set_defaults(handler=_services)
    shell = add_command(
        "shell", "the cctrl-like shell: report datasource changes, watch the VIP follow"
    )
    _add_cluster_options(shell)
    shell.add_argument("--rules-dir", help="the rules directory (default: the shipped rules)")
    shell.add_argument("--host", help="this manager's host name (default: this machine's)")
    shell.add_argument(
        "--dry-run", action="store_true", help="print each command's argv instead of running it"
    )
    shell.add_argument(
        "--netns",
        action="append",
        default=[],
        metavar="HOST=NAMESPACE",
        help="run the commands of datasources on HOST inside network namespace NAMESPACE",
    )
    shell.add_argument(
        "--state",
        action="append",
        default=[],
        metavar="NAME=STATE",
        help="a datasource's state at start, when already known (default OFFLINE)",
    )
    shell.add_argument(
        "--role", action="append", default=[], metavar="NAME=ROLE", help="override a role at start"
    )
    # Unset means 10, so that --etcd can tell that --monitor was given and refuse it.
    _add_monitor_option(shell, default=None)
    observe.add_metrics_option(shell)
    add_unreachable_option(shell)
    shell.add_argument(
        "--etcd",
        metavar="URL[,URL...]",
        help="publish each change to the cluster's keys in etcd for the agents (floatingip "
        "agent) instead of acting here; ls shows what etcd says, including who holds each VIP",
    )
    shell.set_defaults(handler=_shell)
    check = add_command(
        "check", "preflight: files, programs, sudo, interface, subnet, database listening"
    )
    _add_cluster_options(check)
    check.add_argument("--rules-dir", help="the rules directory (default: the shipped rules)")
    check.add_argument(
        "--db-port", type=int, help="check that the database on this port listens on all addresses"
    )
    check.set_defaults(handler=_check)
    sudoers = add_command(
        "sudoers", "print least-privilege sudoers lines for the configured sudo commands"
    )
    _add_cluster_options(sudoers)
    sudoers.add_argument("--user", required=True, help="the account that runs the manager")
    sudoers.add_argument("--host", default="ALL", help="the host these lines apply to (ALL)")
    sudoers.set_defaults(handler=_sudoers)
    agent = subparsers.add_parser(
        "agent",
        help="the distributed mode: one per database host, following the cluster's state in etcd",
        description="Follow the cluster's state in etcd (/floatingip/CLUSTER/...) and keep this "
        "host's VIPs in line with it; a VIP is held only under a lease-backed lock in etcd. "
        "Logs go to stderr with journald priority prefixes. SIGTERM releases the VIPs, the locks "
        "and the lease, and exits 0. Needs the etcd client: pip install 'floatingip[etcd]'.",
        parents=[_verbosity()],
    )
    _add_cluster_options(agent)
    agent.add_argument(
        "--host", required=True, help="this host's name, as the datasources' host field names it"
    )
    agent.add_argument(
        "--etcd",
        required=True,
        metavar="URL[,URL...]",
        help="etcd client URLs (http://HOST:PORT); the next is used when one fails",
    )
    agent.add_argument(
        "--ttl",
        type=int,
        default=5,
        metavar="SECONDS",
        help="the lease TTL (default 5, at least 3): a dead agent's VIP lock is freed after it, "
        "and an agent cut from etcd drops its VIP within it",
    )
    agent.add_argument("--rules-dir", help="the rules directory (default: the shipped rules)")
    agent.add_argument(
        "--patroni-scope",
        metavar="SCOPE",
        help="follow Patroni's own keys in the same etcd (etcd3: in patroni.yml) instead of "
        "/floatingip/CLUSTER/datasource/: each member a datasource on the host of its name "
        "(--host is this member's name:), the member the leader key names, primary and "
        "running, the master; no leader key, no VIP",
    )
    agent.add_argument(
        "--patroni-namespace",
        metavar="PATH",
        help="Patroni's namespace: (default /service): keys /PATH/SCOPE/leader, members/NAME",
    )
    _add_monitor_option(agent)
    observe.add_metrics_option(agent)
    agent.set_defaults(handler=_agent)
    install = add_command(
        "install-rules",
        "copy the shipped rule files (FloatingIP.py) into a manager's rules directory",
    )
    install.add_argument("directory", help="the rules directory (created if missing)")
    install.add_argument("--force", action="store_true", help="replace existing files")
    install.set_defaults(handler=_install_rules)
    add_hook_command(subparsers, lambda: [_verbosity()])
    observe.add_status_command(subparsers, lambda: [_verbosity()])
    add_systemd_command(subparsers, [_verbosity()])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    observe.configure_logging(args.verbose + args.verbose_after, observe.log_format(args))
    try:
        apply_privilege(args)
        return int(args.handler(args))
    except FloatingIPError as exc:
        print(f"floatingip: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before the shell's prompt, or a scripted session
        print("floatingip: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
