"""floatingip: a floating (virtual) IP address that follows a database cluster's master.

One public surface per audience: this package is for embedders (the Manager, what it returns,
the executors, the loaders and the errors a caller catches); :mod:`floatingip.rules` is for rule
authors; :mod:`floatingip.testing` for tests.  Everything else is internal.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from floatingip.classic import ArpAnnouncement
from floatingip.commands import CommandResult, Executor, LocalExecutor, NamespaceExecutor
from floatingip.datasource import DataSource, PolicyMode, Role, State, load_datasources
from floatingip.errors import (
    CommandError,
    ConfigError,
    DataSourceError,
    FloatingIPError,
    ManagerClosedError,
    UsageError,
)
from floatingip.fence import Fence, FenceAnswer
from floatingip.manager import ChangeResult, CommandOutcome, Event, Manager, SwitchResult
from floatingip.service import ServiceDefinition, ServiceTarget, load_service, load_services
from floatingip.supervisor import RetryPolicy
from floatingip.vip import VipSpec
from floatingip.vocabulary import Action, EventKind

__version__ = "0.1.0"

if TYPE_CHECKING:
    from floatingip.ssh import SshExecutor, SshTarget

# Public, but imported on first use: an embedder that runs no command over ssh never loads it.
_LAZY = {"SshExecutor": "floatingip.ssh", "SshTarget": "floatingip.ssh"}

__all__ = [
    "Action",
    "ArpAnnouncement",
    "ChangeResult",
    "CommandError",
    "CommandOutcome",
    "CommandResult",
    "ConfigError",
    "DataSource",
    "DataSourceError",
    "Event",
    "EventKind",
    "Executor",
    "Fence",
    "FenceAnswer",
    "FloatingIPError",
    "LocalExecutor",
    "Manager",
    "ManagerClosedError",
    "NamespaceExecutor",
    "PolicyMode",
    "RetryPolicy",
    "Role",
    "ServiceDefinition",
    "ServiceTarget",
    "SshExecutor",
    "SshTarget",
    "State",
    "SwitchResult",
    "UsageError",
    "VipSpec",
    "__version__",
    "load_datasources",
    "load_service",
    "load_services",
]

# Names this package exported before it had one surface per audience: still importable from
# here, with a DeprecationWarning that names their home.
_MOVED = {
    "DEFAULT_TIMEOUT": "floatingip.commands",
    "command_argv": "floatingip.commands",
    "RecordingExecutor": "floatingip.testing",
    "CommandNotFoundError": "floatingip.errors",
    "CommandStartError": "floatingip.errors",
    "CommandTimeout": "floatingip.errors",
    "DataSourceDefinitionError": "floatingip.errors",
    "DuplicateAddressError": "floatingip.errors",
    "EngineError": "floatingip.errors",
    "Problem": "floatingip.errors",
    "PropertiesError": "floatingip.errors",
    "RuleFileError": "floatingip.errors",
    "ServiceDefinitionError": "floatingip.errors",
    "RuleFailure": "floatingip.engine",
    "JavaProperties": "floatingip.properties",
    "PropertyEntry": "floatingip.properties",
    "read_properties": "floatingip.properties",
    "Intent": "floatingip.rules",
    "RuleContext": "floatingip.rules",
    "RuleSet": "floatingip.rules",
    "install_rules": "floatingip.rules",
    "load_rule_file": "floatingip.rules",
    "load_rules": "floatingip.rules",
    "shipped_rules_dir": "floatingip.rules",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"floatingip.{name} is deprecated: import it from {module}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(module), name)
