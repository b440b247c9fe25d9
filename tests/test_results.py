"""The result types and the typed vocabulary: keyword-only constructors, str-valued enums that
still compare, hash and print as the strings rule files and callers use."""

from __future__ import annotations

import dataclasses
import inspect
import time

import pytest

from floatingip.commands import CommandResult
from floatingip.errors import FloatingIPError, ManagerClosedError, VerificationError
from floatingip.results import ChangeResult, CommandOutcome, Event
from floatingip.service import ACTIONS
from floatingip.vocabulary import Action, Backend, EventKind, SudoMode


def test_result_constructors_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        CommandOutcome("master", Action.START, "rule", None, (), None)  # type: ignore[misc]
    with pytest.raises(TypeError):
        Event(EventKind.COMMAND, "ran")  # type: ignore[misc]
    outcome = CommandOutcome(
        service="master",
        action=Action.START,
        rule="rule",
        datasource="db1",
        argv=("true",),
        result=CommandResult(("true",), 0),
    )
    assert outcome.ok and ChangeResult(change="x", commands=(outcome,)).ok


def test_the_vocabulary_is_the_strings_it_replaces() -> None:
    assert ACTIONS == ("start", "stop", "restart", "status")
    assert Action.START == "start" and {"start": 1}[Action.START] == 1
    assert f"{Action.STOP:<6}|" == "stop  |" and str(EventKind.RULE_ERROR) == "rule-error"
    assert Backend("ifconfig") is Backend.IFCONFIG and SudoMode("auto") is SudoMode.AUTO


def test_the_readme_lists_every_event_kind() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    listed = readme.split("`kind`:", 1)[1].split(")", 1)[0]
    assert [kind.strip() for kind in listed.split(",")] == [kind.value for kind in EventKind]


def test_new_errors_are_caught_by_the_old_except_clauses() -> None:
    assert issubclass(ManagerClosedError, FloatingIPError)
    assert issubclass(VerificationError, FloatingIPError)


@pytest.mark.parametrize("kind", [Event, CommandOutcome, ChangeResult])
def test_written_out_constructors_take_exactly_their_fields(kind: type) -> None:
    """Event's, CommandOutcome's and ChangeResult's __init__ are written out (every change's path):
    each must take every field, keyword-only, with the field's default."""
    fields = {f.name: f for f in dataclasses.fields(kind)}
    parameters = dict(inspect.signature(kind.__init__).parameters)
    parameters.pop("self")
    assert list(parameters) == list(fields)
    for name, parameter in parameters.items():
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, name
        if name == "time":
            continue  # a factory: now
        default = fields[name].default
        expected = inspect.Parameter.empty if default is dataclasses.MISSING else default
        assert parameter.default == expected, name


def test_events_and_outcomes_stay_frozen_and_events_are_timed() -> None:
    """What listeners receive cannot be changed under the history."""
    before = time.time()
    event = Event(kind=EventKind.POLICY, message="policy AUTOMATIC -> MAINTENANCE")
    assert before <= event.time <= time.time()
    assert (event.ok, event.datasource, event.service, event.outcome) == (True, None, None, None)
    assert Event(kind=EventKind.POLICY, message="m", time=1.5).time == 1.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.message = "changed"  # type: ignore[misc]
    assert event == dataclasses.replace(event)
    outcome = CommandOutcome(
        service="master", action=Action.STOP, rule="r", datasource=None, argv=("true",),
        result=CommandResult(("true",), 0),
    )  # fmt: skip
    assert (outcome.error, outcome.host, outcome.steps, outcome.notes) == (None, "", (), ())
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.host = "db2"  # type: ignore[misc]
    assert outcome == dataclasses.replace(outcome) and outcome.ok
    change = ChangeResult(change="datasource db1: state OFFLINE -> ONLINE", commands=(outcome,))
    assert (change.rule_errors, change.rules_fired, change.engine_errors) == ((), (), ())
    with pytest.raises(dataclasses.FrozenInstanceError):
        change.commands = ()  # type: ignore[misc]
    assert change == dataclasses.replace(change) and change.ok
