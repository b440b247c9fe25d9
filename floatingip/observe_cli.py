"""The ``floatingip`` command's observability options: ``--log-format``, ``--metrics`` and the
``status`` subcommand (kept here so that floatingip.cli stays a table of commands)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from floatingip.logformat import formatter

if TYPE_CHECKING:
    from floatingip.metrics import Exporter
    from floatingip.view import ManagerView

__all__ = [
    "add_log_format_option",
    "add_metrics_option",
    "configure_agent_logging",
    "configure_logging",
    "exporter",
    "log_format",
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
