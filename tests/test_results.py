"""The result types and the typed vocabulary: keyword-only constructors, str-valued enums that
still compare, hash and print as the strings rule files and callers use."""

from __future__ import annotations

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
