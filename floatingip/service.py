"""Service definitions: ``cluster-home/conf/cluster/<cluster>/service/<service>.properties``.

A service maps the actions start, stop, restart and status to command lines, as Tungsten's service
files do.  Loading validates the whole file and reports every problem at once; since the commands
run through sudo, files and directories that others could write are refused.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from floatingip import privilege
from floatingip.classic import (
    DEFAULT_ARP_COUNT,
    IPV4,
    ArpAnnouncement,
    announcement,
    classic_keys,
    parse_start,
)
from floatingip.commands import DEFAULT_TIMEOUT, command_argv, shell_syntax
from floatingip.config import (
    ConfigFile,
    cluster_directory,
    name_problem,
    quoted,
    read_config_file,
    trusted_directory,
)
from floatingip.errors import Problem, ServiceDefinitionError, UsageError
from floatingip.trusted import TrustedDirectory
from floatingip.vip import VIP_KEYS, VipSpec, parse_vip
from floatingip.vocabulary import Action

__all__ = [
    "ACTIONS",
    "MAX_COMMAND_LENGTH",
    "REQUIRED_ACTIONS",
    "ServiceDefinition",
    "ServiceTarget",
    "load_service",
    "load_services",
]

logger = logging.getLogger(__name__)

ACTIONS = tuple(Action)  # start, stop, restart, status: the order of the file's command.* lines
REQUIRED_ACTIONS = (Action.START, Action.STOP)
MAX_TIMEOUT = 3600.0
# Checked before splitting (shlex is quadratic on long tokens); real commands are a line.
MAX_COMMAND_LENGTH = 4096
KNOWN_KEYS = ("name", *(f"command.{action}" for action in ACTIONS), "command.timeout", *VIP_KEYS)


@dataclass(frozen=True)
class ServiceTarget:
    """The VIP a service manages and its interface, when known (for status, DAD, preflight)."""

    interface: str | None  # the base interface (eth0 for eth0:0)
    label: str | None  # eth0:0
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None  # a VIP service's first
    prefixlen: int | None

    @functools.cached_property
    def address_text(self) -> str | None:
        """The address as commands print it (str() of an IPv4Address is slow, and asked for on
        every stop's status and every start's duplicate address probe)."""
        return str(self.address) if self.address is not None else None

    def held_in(self, output: str) -> bool:
        """Whether ``output`` shows exactly this address (192.0.2.22 is not 192.0.2.222)."""
        wanted = self.address_text
        if wanted is None:
            return False
        if wanted not in output:  # most outputs (a stop's status): no regex needed to say no
            return False
        return any(m.group(1) == wanted for m in IPV4.finditer(output))


def _target_of_commands(argv: Sequence[str]) -> ServiceTarget:
    """Read the interface and the VIP out of a start command (ifconfig or ip addr add)."""
    start = parse_start(argv)
    address, prefixlen = start.ipv4[0] if len(start.ipv4) == 1 else (None, None)
    interface = start.label.split(":", 1)[0] if start.label else None
    return ServiceTarget(interface, start.label, address, prefixlen)


@dataclass(frozen=True)
class ServiceDefinition:
    """A parsed service file: its name, where it came from, and one command line per action.

    A built-in VIP service (``vip.*`` keys) has ``vip`` set; its ``commands`` show the main
    command of each action, and floatingip runs the whole procedure (see floatingip.actions).
    """

    name: str
    path: Path
    commands: Mapping[str, str | None]
    timeout: float = DEFAULT_TIMEOUT
    lines: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    vip: VipSpec | None = None
    address_hint: ipaddress.IPv4Interface | None = None
    interface_hint: str | None = None
    arp_count: int = DEFAULT_ARP_COUNT  # a classic service's gratuitous ARP after start

    @property
    def reports_held(self) -> bool:
        """Whether its status can tell if the VIP is held: always for a built-in VIP service; a
        classic one needs command.status and a known VIP address."""
        return self.vip is not None or (
            self.commands[Action.STATUS] is not None and self.target.address is not None
        )

    @functools.cached_property
    def target(self) -> ServiceTarget:
        """The VIP and interface: vip.* keys, else read from command.start (vip.address and
        vip.interface, when given next to command.* lines, take precedence)."""
        if self.vip is not None:
            vip = self.vip
            return ServiceTarget(
                vip.interface, vip.label, vip.address.ip, vip.address.network.prefixlen
            )
        target = _target_of_commands(self.argv(Action.START))
        if self.address_hint is not None:
            target = replace(
                target,
                address=self.address_hint.ip,
                prefixlen=self.address_hint.network.prefixlen,
            )
        if self.interface_hint is not None:
            target = replace(target, interface=self.interface_hint)
        return target

    @functools.cached_property
    def announcement(self) -> ArpAnnouncement:
        """The gratuitous ARP a classic service sends after each successful start, or why
        none (floatingip.classic); a built-in VIP service's are its ``vip.announce_argvs()``."""
        if self.vip is not None:
            return ArpAnnouncement(
                None, None, 0, "a built-in VIP service announces as its vip.* say"
            )
        target = self.target
        address = target.address if isinstance(target.address, ipaddress.IPv4Address) else None
        line = self.lines.get("vip.arp.count")
        return announcement(
            parse_start(self.argv(Action.START)),
            address=address,
            interface=target.interface,
            count=self.arp_count,
            where=f"{self.path}:{line}" if line is not None else str(self.path),
        )

    def missing(self, action: Action | str) -> str | None:
        """Why ``action`` cannot run (an unknown action, no command for it); None if it can."""
        if action not in ACTIONS:
            return f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}"
        if self.vip is None and self.commands[action] is None:
            return self._undefined(action)
        return None  # a VIP service's restart is its stop, then its start

    def _undefined(self, action: Action | str) -> str:
        return f"service {self.name!r} ({self.path}) defines no command.{action}"

    def argv(self, action: Action | str) -> tuple[str, ...]:
        """The argv that ``action`` runs (sudo made non-interactive); UsageError if it has none
        (:meth:`missing` says why, without raising)."""
        why = self.missing(action)
        if why is not None:
            raise UsageError(why)
        if self.vip is None:
            return command_argv(str(self.commands[action]))
        if action == Action.START:
            return self.vip.add_argv()
        if action == Action.STOP:
            return self.vip.del_argv()
        if action == Action.STATUS:
            return self.vip.show_argv()
        raise UsageError(self._undefined(action))

    def planned_argvs(self, *, sudo: bool | None = None) -> list[tuple[str, tuple[str, ...]]]:
        """Every (action, argv) this service may run; ``sudo=True`` as a non-root user would."""
        if self.vip is None:
            own: list[tuple[str, tuple[str, ...]]] = [
                (a, self.argv(a)) for a in ACTIONS if self.commands[a] is not None
            ]
            arping = self.announcement.argv(privilege.use_sudo() if sudo is None else sudo)
            return own if arping is None else [*own, (Action.START, arping)]
        vip = self.vip
        starts = (*vip.add_argvs(sudo), *vip.announce_argvs(sudo))
        planned: list[tuple[str, tuple[str, ...]]] = [
            *((Action.START, argv) for argv in starts),
            *((Action.STOP, argv) for argv in vip.del_argvs(sudo)),
            (Action.STATUS, vip.show_argv()),
        ]
        if vip.dad_wait:
            planned.insert(0, (Action.START, vip.dad_argv(sudo)))
        return planned


def _command_problems(path: Path, line: int, key: str, command: str) -> list[Problem]:
    if not command.strip():
        return [Problem(path, line, f"{key} is empty")]
    if len(command) > MAX_COMMAND_LENGTH:
        message = (
            f"{key} is {len(command)} characters long; "
            f"a command may have at most {MAX_COMMAND_LENGTH}"
        )
        return [Problem(path, line, message)]
    problems = []
    if "\x00" in command:
        problems.append(Problem(path, line, f"{key} contains a NUL character"))
    if any("\ud800" <= c <= "\udfff" for c in command):
        problems.append(Problem(path, line, f"{key} contains an unpaired UTF-16 surrogate"))
    try:
        command_argv(command)
    except ValueError as exc:
        problems.append(Problem(path, line, f"{key} cannot be split into arguments: {exc}"))
    for construct in dict.fromkeys(shell_syntax(command)):
        problems.append(
            Problem(
                path,
                line,
                f"{key} uses shell syntax ({construct}) but commands run without a shell; "
                "put the logic in a script and call the script",
            )
        )
    return problems


def _parse_timeout(path: Path, line: int, text: str) -> tuple[float | None, list[Problem]]:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 < value <= MAX_TIMEOUT):
        message = (
            f"command.timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}], "
            f"not {quoted(text)}"
        )
        return None, [Problem(path, line, message)]
    return value, []


def _vip_commands(
    path: Path, values: dict[str, str], lines: dict[str, int]
) -> tuple[VipSpec | None, dict[str, str | None], list[Problem]]:
    spec, problems = parse_vip(path, values, lines)
    if spec is None:
        return None, {}, problems
    commands: dict[str, str | None] = {  # a dual-stack VIP: both commands
        Action.START: "; ".join(map(shlex.join, spec.add_argvs(sudo=False))),
        Action.STOP: "; ".join(map(shlex.join, spec.del_argvs(sudo=False))),
        Action.RESTART: None,
        Action.STATUS: shlex.join(spec.show_argv()),
    }
    return spec, commands, problems


def _service_from_file(config: ConfigFile) -> tuple[ServiceDefinition | None, list[Problem]]:
    path, values, lines = config.path, config.values, config.lines
    problems: list[Problem] = []
    name = values.get("name")
    if name is None:
        problems.append(Problem(path, None, "missing required key 'name'"))
    elif (why := name_problem(name, "service")) is not None:
        problems.append(Problem(path, lines["name"], why))

    vip: VipSpec | None = None
    commands: dict[str, str | None] = {}
    address_hint: ipaddress.IPv4Interface | None = None
    arp_count = DEFAULT_ARP_COUNT
    classic = any(f"command.{action}" in values for action in ACTIONS)
    if not classic and any(key.startswith("vip.") for key in values):
        vip, commands, vip_problems = _vip_commands(path, values, lines)
        problems += vip_problems
    else:
        problems += _classic_commands(path, values, lines, commands)
        address_hint, arp_count, hint_problems = classic_keys(path, values, lines)
        problems += hint_problems

    timeout: float | None = DEFAULT_TIMEOUT
    if "command.timeout" in values:
        timeout, timeout_problems = _parse_timeout(
            path, lines["command.timeout"], values["command.timeout"]
        )
        problems.extend(timeout_problems)

    if problems or name is None or timeout is None:
        return None, problems
    definition = ServiceDefinition(
        name=name,
        path=path,
        commands=MappingProxyType(commands),
        timeout=timeout,
        lines=MappingProxyType(dict(lines)),
        vip=vip,
        address_hint=address_hint,
        interface_hint=values.get("vip.interface") if vip is None else None,
        arp_count=arp_count if vip is None else vip.arp_count,
    )
    return definition, []


def _classic_commands(
    path: Path, values: dict[str, str], lines: dict[str, int], commands: dict[str, str | None]
) -> list[Problem]:
    problems: list[Problem] = []
    for action in ACTIONS:
        key = f"command.{action}"
        command = commands[action] = values.get(key)
        if command is not None:
            problems.extend(_command_problems(path, lines[key], key, command))
        elif action in REQUIRED_ACTIONS:
            problems.append(
                Problem(path, None, f"missing required key {key!r} (or vip.* keys instead)")
            )
    return problems


def _read_service(
    directory: TrustedDirectory, name: str
) -> tuple[ServiceDefinition | None, list[Problem]]:
    config, problems = read_config_file(directory, name, "service file", KNOWN_KEYS)
    if config is None:
        return None, problems
    definition, content_problems = _service_from_file(config)
    problems += content_problems
    problems.sort(key=lambda problem: (problem.line is None, problem.line or 0))
    return (None, problems) if problems else (definition, [])


def load_service(path: str | Path) -> ServiceDefinition:
    """Load and validate one service file; raise ServiceDefinitionError listing every problem."""
    path = Path(path)
    with trusted_directory(path.parent, "service directory", ServiceDefinitionError) as directory:
        definition, problems = _read_service(directory, path.name)
    if problems or definition is None:
        raise ServiceDefinitionError(problems)
    logger.debug("loaded service %r from %s", definition.name, path)
    return definition


def load_services(cluster_home: str | Path, cluster: str) -> dict[str, ServiceDefinition]:
    """Load every ``*.properties`` of a cluster's service directory, keyed by service name.

    All files are validated before anything is returned; one ServiceDefinitionError lists every
    problem in every file, including two files that declare the same name.
    """
    directory = cluster_directory(cluster_home, cluster) / "service"
    if not directory.is_dir():
        raise ServiceDefinitionError(
            [Problem(directory, None, f"no service directory for cluster {cluster!r}")]
        )
    with trusted_directory(directory, "service directory", ServiceDefinitionError) as trusted:
        read = [_read_service(trusted, name) for name in trusted.names(".properties")]
    problems: list[Problem] = []
    services: dict[str, ServiceDefinition] = {}
    for definition, file_problems in read:
        problems += file_problems
        if definition is None:
            continue
        other = services.get(definition.name)
        if other is not None:
            problems.append(
                Problem(
                    definition.path,
                    definition.lines.get("name"),
                    f"service name {definition.name!r} is already defined in "
                    f"{other.path}:{other.lines.get('name')}",
                )
            )
            continue
        services[definition.name] = definition
    if problems:
        raise ServiceDefinitionError(problems)
    logger.info("loaded %d service(s) from %s: %s", len(services), directory, ", ".join(services))
    return services
