"""The ``floatingip`` command's observability options: ``--log-format``, ``--metrics`` and the
``status`` subcommand (kept here so that floatingip.cli stays a table of commands)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from floatingip.errors import UsageError
from floatingip.logformat import formatter

if TYPE_CHECKING:
    from floatingip.commands import Executor
    from floatingip.metrics import Exporter
    from floatingip.status import ClusterStatus
    from floatingip.view import ManagerView

__all__ = [
    "add_log_format_option",
    "add_metrics_option",
    "add_status_command",
    "configure_agent_logging",
    "configure_logging",
    "exporter",
    "log_format",
    "metrics_address",
]


def add_log_format_option(parser: argparse.ArgumentParser, dest: str) -> None:
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=None,
        dest=dest,
        help="log lines as text (decisions as key=value; the default) or as one JSON object "
        "per line; implies -v",
    )


def log_format(args: argparse.Namespace) -> str | None:
    """``--log-format`` given before or after the subcommand (None: not given)."""
    after: str | None = getattr(args, "log_format_after", None)
    before: str | None = getattr(args, "log_format", None)
    return after or before


def configure_logging(verbosity: int, log_format: str | None) -> None:
    """Library code installs no handler; the command installs this one, on stderr.  The shell
    prints every failure itself: logging is for whoever asks for the detail (-v, or a
    --log-format: asking for a format is asking for the lines)."""
    if log_format is not None:
        verbosity = max(verbosity, 1)
    level = {0: logging.CRITICAL + 1, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format or "text"))
    logging.basicConfig(level=level, handlers=[handler])


def configure_agent_logging(verbosity: int, log_format: str | None) -> None:
    """The agent's: INFO at least, text for journald (priority prefixes, no times) or JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format or "text", journal=True))
    logging.basicConfig(level=logging.DEBUG if verbosity > 1 else logging.INFO, force=True)
    logging.getLogger().handlers[:] = [handler]


def add_metrics_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics",
        metavar="[ADDRESS:]PORT",
        help="serve Prometheus metrics at http://ADDRESS:PORT/metrics (a bare PORT: on "
        "127.0.0.1; off by default); needs pip install 'floatingip[metrics]'",
    )


def metrics_address(text: str | None) -> tuple[str, int] | None:
    if text is None:
        return None
    from floatingip.metrics import parse_address

    return parse_address(text)


class _NoExporter:
    def follow(self, manager: ManagerView) -> None:
        pass

    def close(self) -> None:
        pass


def exporter(address: str | None) -> Exporter | _NoExporter:
    """The metrics endpoint ``--metrics`` asks for, listening already (nothing when not asked):
    a bad address, a missing client or a port in use fails before anything else is done."""
    if address is None:
        return _NoExporter()
    from floatingip.metrics import Exporter, parse_address

    return Exporter(parse_address(address))


def add_status_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Callable[[], list[argparse.ArgumentParser]],
) -> None:
    """``floatingip status``: is every VIP where the facts say?  Exit codes: README "Status"."""
    status = subparsers.add_parser(
        "status",
        help="health check: is every VIP where the facts say it should be (exit 0) or not",
        description="Report, per service, where the facts put its VIP (the ONLINE master's "
        "host), where it is held, since when, for which datasource, its last error and repair; "
        "exit 0 when every VIP is where the facts say, 3 when one is held where they do not put "
        "it, 4 when one is held nowhere although they put it somewhere, 5 when a state could not "
        "be read, 1 on an error. Locally it probes the status commands on this host (and "
        "--netns hosts) and starts or stops nothing; with --etcd it reads the cluster's keys.",
        parents=parents(),
    )
    status.add_argument("--cluster-home", required=True, help="the cluster-home directory")
    status.add_argument("--cluster", required=True, help="the cluster's name")
    status.add_argument("--json", action="store_true", help="one JSON document on stdout")
    status.add_argument(
        "--etcd", metavar="URL[,URL...]", help="read the cluster's state in etcd (the agents')"
    )
    status.add_argument(
        "--patroni-scope", metavar="SCOPE",
        help="with --etcd, for agents run with --patroni-scope: the datasources are Patroni's "
        "members and leader key in the same etcd, as the agents follow them",
    )  # fmt: skip
    status.add_argument(
        "--patroni-namespace", metavar="PATH",
        help="Patroni's namespace: (default /service), as given to the agents",
    )  # fmt: skip
    status.add_argument("--host", help="this host's name (default: this machine's)")
    status.add_argument(
        "--netns", action="append", default=[], metavar="HOST=NAMESPACE",
        help="also probe HOST inside network namespace NAMESPACE",
    )  # fmt: skip
    for option, metavar, what in (
        ("--state", "NAME=STATE", "a datasource's state (default OFFLINE, as the cluster home"),
        ("--role", "NAME=ROLE", "a datasource's role (default the cluster home's"),
    ):
        status.add_argument(
            option, action="append", default=[], metavar=metavar, help=f"{what}; not with --etcd)"
        )
    status.add_argument("--policy", help="the policy mode (default AUTOMATIC; not with --etcd)")
    status.set_defaults(handler=run_status)


def run_status(args: argparse.Namespace) -> int:
    from floatingip.status import format_status

    if args.etcd is not None:
        local = [o for o, given in (("--host", args.host), ("--netns", args.netns),
                 ("--state", args.state), ("--role", args.role), ("--policy", args.policy))
                 if given]  # fmt: skip
        if local:
            raise UsageError(f"{', '.join(local)}: for a local status; with --etcd etcd says")
        from floatingip.patroni_source import scope_from_options
        from floatingip.status_etcd import etcd_status

        patroni = scope_from_options(args.patroni_scope, args.patroni_namespace)
        report = etcd_status(args.cluster_home, args.cluster, args.etcd, patroni)
    elif args.patroni_scope is not None or args.patroni_namespace is not None:
        raise UsageError(
            "--patroni-scope, --patroni-namespace: Patroni's keys are read with --etcd"
        )
    else:
        report = _local_status(args)
    if args.json:
        print(report.to_json())
    else:
        print("\n".join(format_status(report)))
    return report.exit_code


def _local_status(args: argparse.Namespace) -> ClusterStatus:
    import socket

    from floatingip.commands import LocalExecutor, namespace_executors
    from floatingip.config import cluster_problem
    from floatingip.datasource import load_datasources, parse_policy, parse_role, parse_state
    from floatingip.service import load_services
    from floatingip.status import local_status

    problem = cluster_problem(args.cluster_home, args.cluster)
    if problem is not None:
        raise UsageError(problem)
    services = load_services(args.cluster_home, args.cluster)
    datasources = load_datasources(args.cluster_home, args.cluster)
    for option, specs in (("--role", args.role), ("--state", args.state)):
        for spec in specs:
            name, separator, value = spec.partition("=")
            if not separator or name not in datasources:
                known = ", ".join(sorted(datasources)) or "none"
                raise UsageError(f"{option} takes NAME=VALUE for a datasource ({known}): {spec!r}")
            if option == "--role":
                datasources[name] = datasources[name].changed(role=parse_role(value))
            else:
                datasources[name] = datasources[name].changed(state=parse_state(value))
    base = LocalExecutor()
    executors: dict[str, Executor] = {args.host or socket.gethostname(): base}
    executors.update(namespace_executors(args.netns, base))
    return local_status(
        cluster=args.cluster, services=services, datasources=datasources,
        policy=parse_policy(args.policy or "AUTOMATIC"), executors=executors,
    )  # fmt: skip
