"""The checks of ``floatingip check``, one function each: the service, datasource and rule files
load; each command's program exists; sudo allows each sudo command for the current user without a
password; the duplicate address probe can run as root from files only root can change; the
interface that a command names exists and the VIP lies in the subnet of an address on it; the
database listens on all addresses.  Each gives :class:`Check` lines (PASS, WARN or FAIL, and the
fix for a failure); commands that look at the host run through an Executor.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import shlex
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from floatingip.actions import duplicate_probe_argv
from floatingip.commands import CommandResult, Executor, split_sudo
from floatingip.config import cluster_directory
from floatingip.dad import PROBE_SCRIPT
from floatingip.datasource import DataSource, Role, load_datasources
from floatingip.errors import CommandError, CommandNotFoundError, FloatingIPError
from floatingip.rule_files import load_rules, shipped_rules_dir
from floatingip.service import ServiceDefinition, load_services
from floatingip.sudoers import resolve_program, sudo_commands
from floatingip.vip import Address, addresses_argv, addresses_in

__all__ = [
    "FAIL",
    "PASS",
    "WARN",
    "Check",
    "check_database",
    "check_duplicate_probe",
    "check_files",
    "check_network",
    "check_programs",
    "check_sudo",
    "listening_addresses",
    "sudoers_hint",
]

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
QUERY_TIMEOUT = 10.0  # seconds for each command a check runs


@dataclass(frozen=True)
class Check:
    """One line of the report: the verdict, what was checked, and how to fix a failure."""

    verdict: str
    what: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.verdict == FAIL


def listening_addresses(port: int, proc_net: Path = Path("/proc/net")) -> list[str]:
    """The local addresses with a TCP socket listening on ``port`` (in this network namespace)."""
    found: list[str] = []
    for name, width in (("tcp", 8), ("tcp6", 32)):
        try:
            lines = (proc_net / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or fields[3] != "0A":  # 0A: TCP_LISTEN
                continue
            address_hex, port_hex = fields[1].split(":")
            if int(port_hex, 16) != port or len(address_hex) != width:
                continue
            raw = bytes.fromhex(address_hex)
            # /proc/net prints each 32-bit word in host (little-endian) order
            words = [raw[i : i + 4][::-1] for i in range(0, len(raw), 4)]
            packed = b"".join(words)
            found.append(str(ipaddress.ip_address(packed)))
    return found


def _interface_networks(
    interface: str, versions: set[int], executor: Executor
) -> list[Address] | None:
    argv = addresses_argv(interface, versions)
    try:
        result = executor.run(argv, timeout=QUERY_TIMEOUT, check=False)
    except CommandError:
        return None
    return [address for address, _ in addresses_in(result.stdout)] if result.ok else None


def _ask_sudo(executor: Executor, runas: str, command: Sequence[str]) -> CommandResult | str:
    """``sudo -n -l -u RUNAS COMMAND...``: its result, or why sudo gave none.  Raises
    CommandNotFoundError when sudo is not installed."""
    try:
        result = executor.run(
            ("sudo", "-n", "-l", "-u", runas, *command), timeout=QUERY_TIMEOUT, check=False
        )
    except CommandNotFoundError:
        raise
    except CommandError as exc:
        return f"sudo: {exc}"
    return "sudo hung: check its configuration" if result.timed_out else result


def check_files(
    cluster_home: Path, cluster: str, rules_dir: Path | None
) -> tuple[list[Check], dict[str, ServiceDefinition]]:
    checks: list[Check] = []
    services: dict[str, ServiceDefinition] = {}
    try:
        services = load_services(cluster_home, cluster)
        listed = ", ".join(f"{name} ({s.path})" for name, s in services.items()) or "none"
        checks.append(Check(PASS, f"service files load: {listed}"))
    except FloatingIPError as exc:
        checks.append(Check(FAIL, "service files load", str(exc)))
    try:
        datasources = load_datasources(cluster_home, cluster)
    except FloatingIPError as exc:
        checks.append(Check(FAIL, "datasource files load", str(exc)))
    else:
        checks += _check_datasources(cluster_home, cluster, datasources)
    directory = rules_dir if rules_dir is not None else shipped_rules_dir()
    try:
        rulesets = load_rules(directory)
        names = ", ".join(ruleset.name for ruleset in rulesets)
        checks.append(Check(PASS, f"rule files load from {directory}: {names}"))
        for ruleset in rulesets:
            for needed in ruleset.services:
                if services and needed not in services:
                    checks.append(
                        Check(
                            FAIL,
                            f"ruleset {ruleset.name} needs service {needed!r}",
                            f"create {cluster_directory(cluster_home, cluster)}/service/"
                            f"{needed}.properties",
                        )
                    )
    except FloatingIPError as exc:
        checks.append(Check(FAIL, f"rule files load from {directory}", str(exc)))
    return checks, services


def _check_datasources(
    cluster_home: Path, cluster: str, datasources: dict[str, DataSource]
) -> list[Check]:
    """The rules act only for datasources the manager knows, and the VIP follows the master."""
    directory = cluster_directory(cluster_home, cluster) / "datasource"
    if not datasources:
        return [
            Check(
                FAIL,
                f"datasource files: none in {directory}",
                f"create {directory}/<name>.properties for each database host, with name=<name>, "
                "host=<its host name> and role=master (one) or role=slave",
            )
        ]
    checks = [Check(PASS, f"datasource files load: {', '.join(datasources)}")]
    masters = [name for name, ds in datasources.items() if ds.role is Role.MASTER]
    if masters:
        checks.append(Check(PASS, f"one datasource is the master: {', '.join(masters)}"))
    else:
        roles = ", ".join(f"{name} {ds.role.value}" for name, ds in datasources.items())
        checks.append(
            Check(
                FAIL,
                f"one datasource is the master: none ({roles})",
                f"set role=master in the datasource file of the current master, in {directory}",
            )
        )
    return checks


def check_programs(services: dict[str, ServiceDefinition]) -> Iterator[Check]:
    missing = False
    for name, service in sorted(services.items()):
        for action, argv in service.planned_argvs():
            programs = [argv[0]]
            split = split_sudo(argv)
            if split is not None and split[1]:
                programs.append(split[1][0])
            for program in programs:
                if resolve_program(program) is None:
                    missing = True
                    fix = "install it, or give its full path in the service file"
                    if program == "arping":  # the gratuitous ARP after start, not a command line
                        fix = "install iputils-arping (RHEL: iputils), or set vip.arp.count=0"
                    yield Check(FAIL, f"{name} {action}: program {program!r} exists", fix)
    if services and not missing:
        yield Check(PASS, "the program of every service command exists")


def _current_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def sudoers_hint(cluster_home: str | Path, cluster: str, user: str) -> str:
    """The ``floatingip sudoers`` command line that prints this cluster's lines for ``user``."""
    return shlex.join(
        [
            "floatingip",
            "sudoers",
            "--cluster-home",
            str(cluster_home),
            "--cluster",
            cluster,
            "--user",
            user,
        ]
    )


def check_sudo(
    cluster_home: Path, cluster: str, services: dict[str, ServiceDefinition], executor: Executor
) -> Iterator[Check]:
    user = _current_user()
    for command in sudo_commands(services):
        if command.resolved is None or (
            str(PROBE_SCRIPT) in command.args and "--advertise" not in command.args
        ):
            continue  # the probe has its own check (check_duplicate_probe)
        shown = shlex.join([command.resolved, *command.args])
        what = f"sudo lets {user} run {shown} as {command.runas} without a password"
        try:
            result = _ask_sudo(executor, command.runas, [command.resolved, *command.args])
        except CommandNotFoundError:
            yield Check(FAIL, "sudo is installed", "apt-get install sudo (or yum install sudo)")
            return
        if isinstance(result, str):
            yield Check(FAIL, f"sudo -n -l answers for {shown}", result)
        elif result.ok:
            yield Check(PASS, what)
        else:
            yield Check(
                FAIL,
                what,
                f"{result.last_line or 'refused'}; add the lines that this prints to "
                f"/etc/sudoers.d/floatingip (with visudo -f):\n"
                f"{sudoers_hint(cluster_home, cluster, user)}",
            )


def _changeable_by_others(path: Path) -> Path | None:
    """The first of ``path`` (as written and resolved) and their directories that an account
    other than root could change, or None."""
    for candidate in dict.fromkeys((path, path.resolve())):
        for item in (candidate, *candidate.parents):
            try:
                info = item.lstat()
            except OSError:
                continue
            if stat.S_ISLNK(info.st_mode):
                continue  # replacing a link takes writing its directory, checked too
            sticky = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
            if info.st_uid != 0 or (info.st_mode & 0o022 and not sticky):
                return item
    return None


def check_duplicate_probe(
    services: dict[str, ServiceDefinition], executor: Executor
) -> Iterator[Check]:
    """The duplicate address probe (floatingip/dad.py) must run as root when a datasource is on
    another host: if it cannot, the VIP is not taken (fail closed)."""
    user = _current_user()
    for name, service in sorted(services.items()):
        argv = duplicate_probe_argv(service, executor=executor)
        if argv is None:
            continue
        what = f"{name}: the duplicate address probe can run as root"
        off = "; or set vip.dad.wait=0 to take the VIP unchecked" if service.vip else ""
        split = split_sudo(argv)
        if split is None:
            if os.geteuid() == 0:
                yield Check(PASS, f"{what} (this account is root)")
            else:
                yield Check(
                    FAIL,
                    f"{what}: it runs as {user} without sudo (vip.sudo=false)",
                    f"it needs a raw ARP socket (root): set vip.sudo=auto{off}",
                )
            continue
        runas, command = split
        shown = shlex.join(command)
        try:
            listed = _ask_sudo(executor, runas, command)
        except CommandNotFoundError as exc:
            listed = f"sudo: {exc}"
        if isinstance(listed, str):
            yield Check(FAIL, f"{what}: sudo -n -l answers for {shown}", listed)
            continue
        if not listed.ok:
            yield Check(
                FAIL,
                f"{what}: sudo lets {user} run {shown}",
                f"{listed.last_line or 'refused'}: without it the VIP is not taken while "
                f"an old master on another host is not confirmed gone; add the lines that "
                f"`floatingip sudoers --user {user}` prints{off}",
            )
            continue
        files = (Path(command[0]), Path(PROBE_SCRIPT))
        loose = [found for path in files if (found := _changeable_by_others(path)) is not None]
        if loose:
            yield Check(
                FAIL,
                f"{what} from files only root can change",
                f"{loose[0]} can be changed by an account other than root, which could then run "
                "anything as root through this sudoers line: install floatingip where only root "
                "can write",
            )
            continue
        yield Check(PASS, f"{what}: sudo lets {user} run {shown}")


def check_network(services: dict[str, ServiceDefinition], executor: Executor) -> Iterator[Check]:
    for name, service in sorted(services.items()):
        target = service.target
        if target.interface is None:
            yield Check(WARN, f"{name}: no interface found in command.start; not checked")
            continue
        vips = [a.ip for a in service.vip.addresses] if service.vip else [target.address]
        versions: set[int] = {vip.version for vip in vips if vip is not None} or {4}
        networks = _interface_networks(target.interface, versions, executor)
        if networks is None:
            yield Check(
                FAIL,
                f"{name}: interface {target.interface} exists",
                f"command.start names {target.label}; `ip link` lists this host's interfaces",
            )
            continue
        yield Check(PASS, f"{name}: interface {target.interface} exists")
        for vip in vips:
            if vip is None:
                yield Check(
                    WARN, f"{name}: no single IPv4 address in command.start; subnet not checked"
                )
                continue
            yield _check_subnet(name, vip, target.interface, networks)


def _check_subnet(
    name: str,
    vip: ipaddress.IPv4Address | ipaddress.IPv6Address,
    interface: str,
    networks: list[Address],
) -> Check:
    """The VIP lies in the subnet (IPv6: the prefix) of another address on its interface."""
    family = f"IPv{vip.version}"
    subnets = [
        net.network
        for net in networks
        if net.version == vip.version and net.ip != vip and not net.ip.is_link_local
    ]
    listed = ", ".join(str(subnet) for subnet in subnets) or f"it has no {family} address"
    matching = [subnet for subnet in subnets if vip in subnet]
    if matching:
        return Check(
            PASS,
            f"{name}: VIP {vip} is in the subnet of an address on "
            f"{interface} ({', '.join(map(str, matching))})",
        )
    return Check(
        FAIL,
        f"{name}: VIP {vip} is not in the subnet of any address on {interface} ({listed})",
        "clients would not reach it: choose a VIP in the subnet shared by every host "
        "that may become master",
    )


def check_database(port: int) -> Check:
    addresses = listening_addresses(port)
    what = f"the database on port {port} listens on all addresses (the seed's step 1)"
    if not addresses:
        return Check(FAIL, what, f"nothing listens on port {port} here: start the database")
    if any(address in ("0.0.0.0", "::") for address in addresses):
        return Check(PASS, f"{what}: {', '.join(sorted(set(addresses)))}")
    return Check(
        FAIL,
        f"{what}: only {', '.join(sorted(set(addresses)))}",
        "clients could not connect on the VIP; MySQL: bind_address=0.0.0.0 in my.cnf; "
        "PostgreSQL: listen_addresses='*' in postgresql.conf; then restart the database",
    )
