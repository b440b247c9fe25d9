"""The seam between the shell's dialogue and what carries out its commands.

A :class:`~floatingip.manager.Manager` is one backend: it acts on this machine.  The other,
:class:`floatingip.shell_etcd.EtcdBackend`, publishes each change to etcd for the agents.  The
shell uses only what this protocol lists, so both give the same prompts and answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from floatingip.datasource import DataSource, PolicyMode, Role, State
from floatingip.results import ChangeResult, CommandOutcome, Listener, SwitchResult
from floatingip.service import ServiceDefinition

__all__ = ["ShellBackend"]


class ShellBackend(Protocol):
    """What the shell asks of its backend; every change raises FloatingIPError, changing
    nothing, when it cannot be made (an unknown name, no switch target, etcd unreachable)."""

    cluster: str
    host: str  # the host this backend acts for
    hosts: frozenset[str]  # every host whose commands it runs (none for etcd)

    @property
    def datasources(self) -> Mapping[str, DataSource]: ...

    def datasource(self, name: str) -> DataSource: ...

    @property
    def services(self) -> Mapping[str, ServiceDefinition]: ...

    @property
    def policy(self) -> PolicyMode: ...

    @property
    def held(self) -> Mapping[str, str]: ...

    @property
    def problems(self) -> Mapping[str, str]: ...

    @property
    def repairs(self) -> int: ...

    def add_listener(self, listener: Listener) -> None: ...

    def remove_listener(self, listener: Listener) -> None: ...

    def update_datasource(
        self, name: str, *, role: Role | str | None = None, state: State | str | None = None
    ) -> ChangeResult: ...

    def recover(self, name: str) -> ChangeResult: ...

    def welcome(self, name: str) -> ChangeResult: ...

    def set_policy(self, mode: PolicyMode | str) -> ChangeResult: ...

    def switch(self, to: str | None = None) -> SwitchResult: ...

    def switch_target(self, to: str | None = None) -> str: ...

    def run_service(self, name: str, action: str, *, host: str | None = None) -> CommandOutcome: ...
