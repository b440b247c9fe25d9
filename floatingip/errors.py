"""The exception hierarchy: every error floatingip raises is a :class:`FloatingIPError`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from floatingip.commands import CommandResult

__all__ = [
    "CommandError",
    "CommandNotFoundError",
    "CommandStartError",
    "CommandTimeout",
    "ConfigError",
    "DataSourceDefinitionError",
    "DataSourceError",
    "DuplicateAddressError",
    "EngineError",
    "FloatingIPError",
    "HostDeadError",
    "HostUnreachableError",
    "ManagerClosedError",
    "Problem",
    "PropertiesError",
    "RuleFileError",
    "SandboxError",
    "ServiceDefinitionError",
    "UsageError",
    "VerificationError",
]


class FloatingIPError(Exception):
    """Root of every error raised by floatingip."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file, at one line when the line is known."""

    path: Path | None
    line: int | None
    message: str

    def __str__(self) -> str:
        where = str(self.path) if self.path is not None else "<input>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.message}"


class ConfigError(FloatingIPError):
    """A configuration file is wrong; carries every problem found, not just the first."""

    summary = "invalid configuration"
    shown = 20  # problems listed in the message; the rest are counted (all are in .problems)

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        if not self.problems:
            raise ValueError("a ConfigError needs at least one problem")
        super().__init__(self._format())

    def _format(self) -> str:
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"{self.summary} ({count} {noun}):"]
        lines.extend(f"  {problem}" for problem in self.problems[: self.shown])
        if count > self.shown:
            lines.append(f"  ... and {count - self.shown} more problems")
        return "\n".join(lines)

    @property
    def path(self) -> Path | None:
        """The file of the first problem (most errors concern a single file)."""
        return self.problems[0].path

    @property
    def line(self) -> int | None:
        """The line of the first problem."""
        return self.problems[0].line


class PropertiesError(ConfigError):
    """A ``.properties`` file that java.util.Properties would not read, or not read as written."""

    summary = "invalid properties file"


class ServiceDefinitionError(ConfigError):
    """A service definition (``service/<name>.properties``) that floatingip refuses to use."""

    summary = "invalid service definition"


class DataSourceDefinitionError(ConfigError):
    """A datasource file (``datasource/<name>.properties``) that floatingip refuses to use."""

    summary = "invalid datasource definition"


class RuleFileError(ConfigError):
    """A rule file that does not load or does not define its rules properly."""

    summary = "invalid rule file"


class UsageError(FloatingIPError, ValueError):
    """A request that cannot be carried out (unknown name, wrong state); nothing was changed."""


class DataSourceError(UsageError):
    """An unknown datasource, role, state or policy mode was given; nothing was changed."""


class EngineError(FloatingIPError):
    """The rules engine refused or lost a fact (for example a 32-bit identity hash collision)."""


class ManagerClosedError(FloatingIPError):
    """The manager is closed: it takes no more changes (nor runs any command but the failsafe)."""


class VerificationError(FloatingIPError):
    """A start or stop ran, but checking afterwards shows the VIP where it should not be (or
    not where it should be)."""


class DuplicateAddressError(FloatingIPError):
    """Another host answers for the VIP: floatingip refuses to take it (never two holders)."""


class SandboxError(FloatingIPError):
    """The sandbox (floatingip.sandbox) cannot be built here (no root, no ``ip netns``) or a step
    of it failed."""


class CommandError(FloatingIPError):
    """A command failed: it exited non-zero, timed out, or could not be started."""

    def __init__(
        self,
        message: str,
        *,
        argv: Sequence[str],
        result: CommandResult | None = None,
    ) -> None:
        self.argv: tuple[str, ...] = tuple(argv)
        self.result = result
        super().__init__(message)

    @property
    def exit_code(self) -> int | None:
        return self.result.exit_code if self.result is not None else None

    @property
    def stdout(self) -> str:
        return self.result.stdout if self.result is not None else ""

    @property
    def stderr(self) -> str:
        return self.result.stderr if self.result is not None else ""


class CommandTimeout(CommandError):
    """A command ran past its timeout; its whole process group was killed."""


class CommandNotFoundError(CommandError):
    """The command's program does not exist or is not executable."""


class CommandStartError(CommandError):
    """The command's program exists but could not be executed: a ``#!`` line ending in a carriage
    return (CRLF line endings), a missing interpreter, no permission, not an executable format.
    ``reason`` says which."""

    def __init__(self, message: str, *, argv: Sequence[str], reason: str) -> None:
        super().__init__(message, argv=argv)
        self.reason = reason


class HostUnreachableError(CommandError):
    """A command could not reach its host: the transport failed (ssh exit 255, the network
    namespace is gone, an executor's connection refused) or the host did not answer in time.
    Unlike a command that ran and failed, nothing is known of the host's state: its VIP may still
    be up there.  ``host`` and ``transport`` name where and how."""

    def __init__(
        self,
        message: str,
        *,
        host: str,
        transport: str,
        argv: Sequence[str] = (),
        result: CommandResult | None = None,
    ) -> None:
        super().__init__(message, argv=argv, result=result)
        self.host = host
        self.transport = transport


class HostDeadError(FloatingIPError):
    """The host was declared dead (``Manager.declare_dead``): nothing runs there until it is
    declared alive again."""

    def __init__(self, message: str, *, host: str) -> None:
        super().__init__(message)
        self.host = host
