"""Service definitions: ``cluster-home/conf/cluster/<cluster>/service/<service>.properties``.

A service maps the actions start, stop, restart and status to command lines, as Tungsten's service
files do.  Loading validates the whole file and reports every problem at once; since the commands
run through sudo, files and directories that others could write are refused.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from floatingip.commands import DEFAULT_TIMEOUT, command_argv, shell_syntax
from floatingip.errors import Problem, PropertiesError, ServiceDefinitionError
from floatingip.properties import PropertyEntry, read_properties

__all__ = [
    "ACTIONS",
    "REQUIRED_ACTIONS",
    "ServiceDefinition",
    "load_service",
    "load_services",
    "service_directory",
]

logger = logging.getLogger(__name__)

ACTIONS = ("start", "stop", "restart", "status")
REQUIRED_ACTIONS = ("start", "stop")
MAX_TIMEOUT = 3600.0
KNOWN_KEYS = ("name", *(f"command.{action}" for action in ACTIONS), "command.timeout")
# Service, datasource and cluster names end up in paths, logs and the shell: keep them plain.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class ServiceDefinition:
    """A parsed service file: its name, where it came from, and one command line per action."""

    name: str
    path: Path
    commands: Mapping[str, str | None]
    timeout: float = DEFAULT_TIMEOUT
    lines: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}), repr=False)

    def argv(self, action: str) -> tuple[str, ...]:
        """The argv that ``action`` runs (sudo made non-interactive); KeyError if not defined."""
        if action not in ACTIONS:
            raise KeyError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
        command = self.commands[action]
        if command is None:
            raise KeyError(f"service {self.name!r} ({self.path}) defines no command.{action}")
        return command_argv(command)


def _permission_problems(path: Path, what: str) -> list[Problem]:
    """Refuse what another user could change: its commands are run, often as root through sudo."""
    try:
        info = path.stat()
    except OSError as exc:
        return [Problem(path, None, f"cannot read {what}: {exc.strerror or exc}")]
    problems = []
    if info.st_uid not in (0, os.geteuid()):
        problems.append(
            Problem(
                path,
                None,
                f"{what} is owned by uid {info.st_uid}, not by root or the current user "
                f"(uid {os.geteuid()}); its commands may run as root, so no other user may own it",
            )
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = stat.S_IMODE(info.st_mode)
        problems.append(
            Problem(
                path,
                None,
                f"{what} is writable by group or others (mode {mode:04o}); its commands may run "
                f"as root: chmod go-w {path}",
            )
        )
    return problems


def _first_lines(entries: Iterable[PropertyEntry]) -> dict[str, list[int]]:
    lines: dict[str, list[int]] = {}
    for entry in entries:
        lines.setdefault(entry.key, []).append(entry.line)
    return lines


def _validate_command(path: Path, line: int, key: str, command: str) -> list[Problem]:
    if not command.strip():
        return [Problem(path, line, f"{key} is empty")]
    problems = []
    if "\x00" in command:
        problems.append(Problem(path, line, f"{key} contains a NUL character"))
    if any("\ud800" <= c <= "\udfff" for c in command):
        problems.append(Problem(path, line, f"{key} contains an unpaired UTF-16 surrogate"))
    try:
        command_argv(command)
    except ValueError as exc:
        problems.append(Problem(path, line, f"{key} cannot be split into arguments: {exc}"))
    for construct in shell_syntax(command):
        problems.append(
            Problem(
                path,
                line,
                f"{key} uses shell syntax ({construct}) but commands run without a shell; "
                "put the logic in a script and call the script",
            )
        )
    return problems


def _validate_timeout(path: Path, line: int, text: str) -> tuple[float | None, list[Problem]]:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 < value <= MAX_TIMEOUT):
        message = (
            f"command.timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}], not {text!r}"
        )
        return None, [Problem(path, line, message)]
    return value, []


def _service_from_entries(
    path: Path, entries: list[PropertyEntry]
) -> tuple[ServiceDefinition | None, list[Problem]]:
    problems: list[Problem] = []
    lines = _first_lines(entries)
    values = {entry.key: entry.value for entry in entries}
    for key, where in lines.items():
        if len(where) > 1:
            listed = ", ".join(str(line) for line in where)
            problems.append(
                Problem(path, where[-1], f"{key!r} is set more than once (lines {listed})")
            )
        if key not in KNOWN_KEYS:
            message = f"unknown key {key!r}"
            if key.startswith("\ufeff"):
                message += " (the file starts with a byte order mark; save it as UTF-8 without BOM)"
            else:
                close = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.6)
                hint = (
                    f"did you mean {close[0]!r}?"
                    if close
                    else f"known keys: {', '.join(KNOWN_KEYS)}"
                )
                message += f" ({hint})"
            problems.append(Problem(path, where[0], message))

    name = values.get("name")
    if name is None:
        problems.append(Problem(path, None, "missing required key 'name'"))
    elif not NAME_PATTERN.fullmatch(name):
        problems.append(
            Problem(
                path,
                lines["name"][-1],
                f"name {name!r} is not a valid service name "
                "(letters, digits, '.', '_', '-'; at most 64; starting with a letter or digit)",
            )
        )

    commands: dict[str, str | None] = {}
    for action in ACTIONS:
        key = f"command.{action}"
        command = values.get(key)
        commands[action] = command
        if command is None:
            if action in REQUIRED_ACTIONS:
                problems.append(Problem(path, None, f"missing required key {key!r}"))
            continue
        problems.extend(_validate_command(path, lines[key][-1], key, command))

    timeout: float | None = DEFAULT_TIMEOUT
    if "command.timeout" in values:
        timeout, timeout_problems = _validate_timeout(
            path, lines["command.timeout"][-1], values["command.timeout"]
        )
        problems.extend(timeout_problems)

    if problems or name is None or timeout is None:
        problems.sort(key=lambda problem: (problem.line is None, problem.line or 0))
        return None, problems
    definition = ServiceDefinition(
        name=name,
        path=path,
        commands=MappingProxyType(commands),
        timeout=timeout,
        lines=MappingProxyType({key: where[-1] for key, where in lines.items()}),
    )
    return definition, []


def _read_service(path: Path) -> tuple[ServiceDefinition | None, list[Problem]]:
    problems = _permission_problems(path, "service file")
    if problems and not path.exists():
        return None, problems
    if path.exists() and not path.is_file():
        return None, [Problem(path, None, "service definition is not a regular file")]
    try:
        entries = read_properties(path)
    except PropertiesError as exc:
        return None, problems + list(exc.problems)
    definition, content_problems = _service_from_entries(path, entries)
    problems += content_problems
    return (None, problems) if problems else (definition, [])


def load_service(path: str | Path) -> ServiceDefinition:
    """Load and validate one service file; raise ServiceDefinitionError listing every problem."""
    path = Path(path)
    definition, problems = _read_service(path)
    problems = _permission_problems(path.parent, "service directory") + problems
    if problems or definition is None:
        raise ServiceDefinitionError(problems)
    logger.debug("loaded service %r from %s", definition.name, path)
    return definition


def service_directory(cluster_home: str | Path, cluster: str) -> Path:
    """``cluster_home/conf/cluster/<cluster>/service``; the cluster name must be a plain name."""
    if not NAME_PATTERN.fullmatch(cluster):
        raise ServiceDefinitionError(
            [Problem(Path(cluster_home), None, f"invalid cluster name {cluster!r}")]
        )
    return Path(cluster_home) / "conf" / "cluster" / cluster / "service"


def load_services(cluster_home: str | Path, cluster: str) -> dict[str, ServiceDefinition]:
    """Load every ``*.properties`` of a cluster's service directory, keyed by service name.

    All files are validated before anything is returned; one ServiceDefinitionError lists every
    problem in every file, including two files that declare the same name.
    """
    directory = service_directory(cluster_home, cluster)
    if not directory.is_dir():
        raise ServiceDefinitionError(
            [Problem(directory, None, f"no service directory for cluster {cluster!r}")]
        )
    problems = _permission_problems(directory, "service directory")
    services: dict[str, ServiceDefinition] = {}
    for path in sorted(directory.glob("*.properties")):
        definition, file_problems = _read_service(path)
        problems += file_problems
        if definition is None:
            continue
        other = services.get(definition.name)
        if other is not None:
            problems.append(
                Problem(
                    path,
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
