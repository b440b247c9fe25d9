"""floatingip: a floating (virtual) IP address that follows a database cluster's master."""

from __future__ import annotations

from floatingip.commands import (
    DEFAULT_TIMEOUT,
    CommandResult,
    Executor,
    LocalExecutor,
    NamespaceExecutor,
    RecordingExecutor,
    command_argv,
)
from floatingip.errors import (
    CommandError,
    CommandNotFoundError,
    CommandTimeout,
    ConfigError,
    FloatingIPError,
    Problem,
    PropertiesError,
    ServiceDefinitionError,
)
from floatingip.properties import JavaProperties, PropertyEntry, read_properties
from floatingip.service import ServiceDefinition, load_service, load_services

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TIMEOUT",
    "CommandError",
    "CommandNotFoundError",
    "CommandResult",
    "CommandTimeout",
    "ConfigError",
    "Executor",
    "FloatingIPError",
    "JavaProperties",
    "LocalExecutor",
    "NamespaceExecutor",
    "Problem",
    "PropertiesError",
    "PropertyEntry",
    "RecordingExecutor",
    "ServiceDefinition",
    "ServiceDefinitionError",
    "__version__",
    "command_argv",
    "load_service",
    "load_services",
    "read_properties",
]
