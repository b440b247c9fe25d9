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
from floatingip.datasource import (
    DataSource,
    PolicyMode,
    Role,
    State,
    load_datasources,
)
from floatingip.engine import RuleFailure
from floatingip.errors import (
    CommandError,
    CommandNotFoundError,
    CommandStartError,
    CommandTimeout,
    ConfigError,
    DataSourceDefinitionError,
    DataSourceError,
    DuplicateAddressError,
    EngineError,
    FloatingIPError,
    Problem,
    PropertiesError,
    RuleFileError,
    ServiceDefinitionError,
    UsageError,
)
from floatingip.manager import ChangeResult, CommandOutcome, Event, Manager, SwitchResult
from floatingip.properties import JavaProperties, PropertyEntry, read_properties
from floatingip.rules import (
    Intent,
    RuleContext,
    RuleSet,
    install_rules,
    load_rule_file,
    load_rules,
    shipped_rules_dir,
)
from floatingip.service import ServiceDefinition, load_service, load_services
from floatingip.supervisor import RetryPolicy

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TIMEOUT",
    "ChangeResult",
    "CommandError",
    "CommandNotFoundError",
    "CommandOutcome",
    "CommandResult",
    "CommandStartError",
    "CommandTimeout",
    "ConfigError",
    "DataSource",
    "DataSourceDefinitionError",
    "DataSourceError",
    "DuplicateAddressError",
    "EngineError",
    "Event",
    "Executor",
    "FloatingIPError",
    "Intent",
    "JavaProperties",
    "LocalExecutor",
    "Manager",
    "NamespaceExecutor",
    "PolicyMode",
    "Problem",
    "PropertiesError",
    "PropertyEntry",
    "RecordingExecutor",
    "RetryPolicy",
    "Role",
    "RuleContext",
    "RuleFailure",
    "RuleFileError",
    "RuleSet",
    "ServiceDefinition",
    "ServiceDefinitionError",
    "State",
    "SwitchResult",
    "UsageError",
    "__version__",
    "command_argv",
    "install_rules",
    "load_datasources",
    "load_rule_file",
    "load_rules",
    "load_service",
    "load_services",
    "read_properties",
    "shipped_rules_dir",
]
