"""floatingip.actions: the result of an action (what the Manager records of it)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from floatingip.actions import ActionResult
from floatingip.commands import CommandResult
from floatingip.errors import FloatingIPError


def test_a_fence_s_steps_come_first_and_every_other_field_is_kept() -> None:
    """after() is built by hand (it is on every start's path): it must keep each field, the
    ones added later included, as dataclasses.replace would."""
    probe = CommandResult(("probe",), 0, stdout="free\n")
    start = CommandResult(("start",), 1, stderr="no\n")
    result = ActionResult(
        ("start",),
        start,
        FloatingIPError("no"),
        steps=(start,),
        notes=("a note",),
        held=True,
        announce=(("arping",),),
        partial=True,
    )
    assert result.after((probe,)) == dataclasses.replace(result, steps=(probe, start))
    # every field has a value different from its default, so a dropped one would show
    defaults = ActionResult((), None)
    for f in dataclasses.fields(ActionResult):
        assert getattr(result, f.name) != getattr(defaults, f.name), f.name


def test_the_written_out_constructor_takes_exactly_the_fields() -> None:
    """ActionResult's __init__ is written out (every command makes one): the same parameters,
    in the same order and with the same defaults, as the dataclass's fields."""
    fields = dataclasses.fields(ActionResult)
    parameters = list(inspect.signature(ActionResult.__init__).parameters.values())[1:]
    assert [p.name for p in parameters] == [f.name for f in fields]
    for parameter, f in zip(parameters, fields, strict=True):
        default = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        assert parameter.default == default, f.name
    result = ActionResult(("true",), CommandResult(("true",), 0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.held = True  # type: ignore[misc]
    assert result.ok and result == dataclasses.replace(result)
