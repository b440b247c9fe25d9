"""``floatingip check``: the seed's steps 1 and 2, verified on this host before a failover.

Runs the checks (floatingip.checks) in order and reports them: a line per check, PASS, WARN or
FAIL, and for a failure the fix.  Commands (``sudo -n -l``, ``ip addr show``) run through an
Executor: this host's by default, a fake in tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from floatingip import privilege
from floatingip.announce_check import check_announcements
from floatingip.checks import (
    FAIL,
    Check,
    check_database,
    check_duplicate_probe,
    check_files,
    check_network,
    check_programs,
    check_sudo,
    listening_addresses,
    sudoers_hint,
)
from floatingip.commands import Executor, LocalExecutor
from floatingip.config import cluster_problem
from floatingip.privilege import Privilege
from floatingip.privilege_check import check_privilege

__all__ = [
    "Check",
    "format_checks",
    "listening_addresses",
    "run_checks",
    "sudoers_hint",
]


def run_checks(
    cluster_home: str | Path,
    cluster: str,
    *,
    rules_dir: str | Path | None = None,
    db_port: int | None = None,
    executor: Executor | None = None,
) -> list[Check]:
    """Run every check; never raises for what it checks.  ``executor`` runs the commands that
    look at this host (``sudo -n -l``, ``ip addr show``): LocalExecutor() by default."""
    executor = executor if executor is not None else LocalExecutor()
    problem = cluster_problem(cluster_home, cluster)
    if problem is not None:  # nothing else can be checked
        return [Check(FAIL, f"cluster {cluster} exists in cluster home {cluster_home}", problem)]
    checks, services = check_files(
        Path(cluster_home), cluster, Path(rules_dir) if rules_dir is not None else None
    )
    checks += list(check_programs(services))
    checks += list(check_privilege(services, executor))
    if privilege.current() is not Privilege.CAPABILITIES:  # there: no sudo, check_privilege
        checks += list(check_sudo(Path(cluster_home), cluster, services, executor))
        checks += list(check_duplicate_probe(services, executor))
    checks += list(check_network(services, executor))
    checks += list(check_announcements(services, executor))
    if db_port is not None:
        checks.append(check_database(db_port))
    return checks


def format_checks(checks: Sequence[Check]) -> list[str]:
    """The report: a line per check, the fix under each failure, and a count."""
    lines = []
    for check in checks:
        lines.append(f"{check.verdict}  {check.what}")
        for index, line in enumerate(check.fix.splitlines()):
            lines.append(f"      {'fix: ' if index == 0 else '     '}{line}")
    failed = sum(check.failed for check in checks)
    lines.append(f"checks: {len(checks) - failed} ok, {failed} failed")
    return lines
