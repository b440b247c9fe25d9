"""The public API: one surface per audience, every name exists, every returned type importable,
old names still importable with a DeprecationWarning, and the errors share one root."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import typing
from types import ModuleType

import pytest

import floatingip
import floatingip.errors
import floatingip.fence
import floatingip.rules
import floatingip.testing
import floatingip.vocabulary

PUBLIC = (
    floatingip,
    floatingip.errors,
    floatingip.fence,
    floatingip.rules,
    floatingip.testing,
    floatingip.vocabulary,
)

EMBEDDERS = {
    "__version__",
    # the Manager and what it returns
    "Manager", "ChangeResult", "SwitchResult", "CommandOutcome", "Event", "EventKind",
    "Action", "RetryPolicy",
    # deciding whether this host may take a VIP
    "Fence", "FenceAnswer",
    # running commands
    "Executor", "LocalExecutor", "NamespaceExecutor", "SshExecutor", "SshTarget", "CommandResult",
    # the cluster's definition
    "load_service", "load_services", "load_datasources", "ServiceDefinition", "ServiceTarget",
    "ArpAnnouncement", "VipSpec", "DataSource", "Role", "State", "PolicyMode",
    # the errors a caller catches
    "FloatingIPError", "ConfigError", "UsageError", "DataSourceError", "CommandError",
    "ManagerClosedError",
}  # fmt: skip


@pytest.mark.parametrize("module", PUBLIC, ids=lambda module: module.__name__)
def test_everything_exported_exists(module: ModuleType) -> None:
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


def test_the_embedders_surface_is_small_and_has_no_internals() -> None:
    assert set(floatingip.__all__) == EMBEDDERS
    for internal in ("Intent", "RuleFailure", "Problem", "PropertyEntry", "command_argv"):
        assert internal not in floatingip.__all__
    assert "Intent" not in floatingip.rules.__all__
    assert "RecordingExecutor" in floatingip.testing.__all__


def _classes_in(annotation: object) -> set[type]:
    found = {annotation} if isinstance(annotation, type) else set()
    for argument in typing.get_args(annotation):
        found |= _classes_in(argument)
    return found


def _returned_types() -> dict[str, set[type]]:
    """The floatingip classes that public attributes of exported classes return."""
    returned: dict[str, set[type]] = {}
    for name in floatingip.__all__:
        cls = getattr(floatingip, name)
        if not inspect.isclass(cls) or not cls.__module__.startswith("floatingip"):
            continue
        annotations: list[object] = []
        if dataclasses.is_dataclass(cls):
            hints = typing.get_type_hints(cls)
            annotations += [hints[field.name] for field in dataclasses.fields(cls)]
        for attribute, member in vars(cls).items():
            if attribute.startswith("_"):
                continue
            if isinstance(member, property):
                function = member.fget
            elif isinstance(member, functools.cached_property):
                function = member.func
            else:
                function = member
            if callable(function):
                annotations.append(typing.get_type_hints(function).get("return"))
        for annotation in annotations:
            for found in _classes_in(annotation):
                if found.__module__.startswith("floatingip"):
                    returned.setdefault(f"{found.__module__}.{found.__qualname__}", set()).add(cls)
    return returned


def test_every_type_a_public_attribute_returns_is_importable_from_a_public_module() -> None:
    returned = _returned_types()
    assert "floatingip.vip.VipSpec" in returned and "floatingip.service.ServiceTarget" in returned
    public = {id(getattr(module, name)) for module in PUBLIC for name in module.__all__}
    public.add(id(importlib.import_module("floatingip.engine").RuleFailure))  # .rule_errors
    hidden = sorted(name for name in returned if id(_resolve(name)) not in public)
    assert hidden == []


def _resolve(qualified: str) -> object:
    module, _, name = qualified.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("name", sorted(floatingip._MOVED))
def test_old_names_are_importable_with_a_deprecation_warning(name: str) -> None:
    home = importlib.import_module(floatingip._MOVED[name])
    with pytest.warns(
        DeprecationWarning, match=f"floatingip.{name} is deprecated.*{home.__name__}"
    ):
        old = getattr(floatingip, name)
    assert old is getattr(home, name)


def test_from_import_of_an_old_name_warns() -> None:
    with pytest.warns(DeprecationWarning, match="floatingip.testing"):
        from floatingip import RecordingExecutor
    assert RecordingExecutor is floatingip.testing.RecordingExecutor
    with pytest.warns(DeprecationWarning, match="floatingip.testing.RecordingExecutor"):
        from floatingip.commands import RecordingExecutor as old
    assert old is floatingip.testing.RecordingExecutor


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        floatingip.NoSuchThing  # noqa: B018
    with pytest.raises(AttributeError):
        importlib.import_module("floatingip.commands").NoSuchThing  # noqa: B018


def test_every_error_is_a_floatingip_error() -> None:
    errors = [
        getattr(floatingip.errors, name)
        for name in floatingip.errors.__all__
        if isinstance(getattr(floatingip.errors, name), type)
        and name.endswith(("Error", "Timeout"))
    ]
    assert len(errors) >= 12
    assert all(issubclass(error, floatingip.FloatingIPError) for error in errors)
    for name in floatingip.__all__:
        if name.endswith("Error"):
            assert getattr(floatingip, name) is getattr(floatingip.errors, name)
