"""The conditions of rule files and the facts they match: what :mod:`floatingip.rules` offers
rule authors to say which facts a rule needs, and what a consequence reads of them.

A condition matches one fact by its kind and fields; ``c.alias << condition`` names it in a rule.
A field's value is a plain value (equality), :func:`one_of` (membership), :func:`other_than`
(inequality), or another fact's field (``name=c.vip.holder``); :func:`datasource`'s ``unless``
says what a fact must no longer be.  The facts:

========== ===================================================================================
kind       fields
========== ===================================================================================
datasource cluster, name, host, role, state, local (its host is this manager's host),
           previous_role, previous_state
policy     mode (AUTOMATIC, MANUAL, MAINTENANCE)
service    name, held (its start ran here and its stop has not), holder (the datasource it was
           started for, or "")
manager    host, state (STARTING while it reconciles at start, RUNNING, STOPPING)
========== ===================================================================================
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

from durable.lang import m

from floatingip.datasource import PolicyMode
from floatingip.facts import DATASOURCE, KIND, MANAGER, POLICY, SERVICE
from floatingip.vocabulary import Phase

__all__ = [
    "Condition",
    "Fact",
    "Matcher",
    "active_policy",
    "datasource",
    "manager_running",
    "manager_stopping",
    "one_of",
    "other_than",
    "policy",
    "service",
]


class Condition(Protocol):
    """A condition on one fact (a durable_rules expression): name it with ``c.alias << ...``,
    combine conditions on the same fact with ``&`` (and) and ``|`` (or)."""

    def __and__(self, other: Condition) -> Condition: ...

    def __or__(self, other: Condition) -> Condition: ...


@dataclass(frozen=True)
class Matcher:
    """A field's value that is not a plain equality: see :func:`one_of` and :func:`other_than`."""

    values: tuple[object, ...]
    equal: bool  # one_of: equal to one of ``values``; other_than: equal to none of them


def one_of(*values: object) -> Matcher:
    """Membership: the field equals one of ``values`` (``role=one_of("master", "relay")``)."""
    if not values:
        raise ValueError("one_of() needs at least one value")
    return Matcher(values, equal=True)


def other_than(*values: object) -> Matcher:
    """Inequality: the field equals none of ``values`` (``mode=other_than("MAINTENANCE")``)."""
    if not values:
        raise ValueError("other_than() needs at least one value")
    return Matcher(values, equal=False)


def _field_value(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


def _equals(key: str, value: object, *, negate: bool = False) -> Any:
    """durable's ``m.key == value`` (``!=`` with ``negate``); a boolean is compared as ``==``
    with its opposite, as durable_rules matches booleans."""
    field, value = getattr(m, key), _field_value(value)
    if isinstance(value, bool):
        return field == (value != negate)
    return field != value if negate else field == value


def _matches(key: str, value: object) -> Any:
    if not isinstance(value, Matcher):
        return _equals(key, value)
    tests = [_equals(key, one, negate=not value.equal) for one in value.values]
    combined = tests[0]
    for test in tests[1:]:
        combined = (combined | test) if value.equal else (combined & test)
    return combined


def _fact_of_kind(
    kind: str, fields: Mapping[str, object], unless: Mapping[str, object] | None = None
) -> Condition:
    expression = getattr(m, KIND) == kind
    for key, value in fields.items():
        expression = expression & _matches(key, value)
    if unless:  # not all of them: one differs
        tests = [_equals(key, value, negate=True) for key, value in unless.items()]
        differs = tests[0]
        for test in tests[1:]:
            differs = differs | test
        expression = expression & differs
    return cast(Condition, expression)


def datasource(*, unless: Mapping[str, object] | None = None, **fields: object) -> Condition:
    """A datasource fact whose fields match ``fields`` and, given ``unless``, do not match all
    of ``unless``.

    A field's value is a value (``role="master"``, ``local=True``), :func:`one_of`,
    :func:`other_than`, or another fact's field (``name=c.vip.holder``).  ``unless`` says what
    the fact must no longer be: ``unless={"role": "master", "state": "ONLINE"}`` matches a
    datasource that is not an ONLINE master (any other role, or any other state).
    """
    return _fact_of_kind(DATASOURCE, fields, unless)


def service(name: str, *, held: bool | None = None) -> Condition:
    """The fact of service ``name``; with ``held``, only while it is (or is not) held here."""
    fields: dict[str, object] = {"name": name}
    if held is not None:
        fields["held"] = held
    return _fact_of_kind(SERVICE, fields)


def policy(**fields: object) -> Condition:
    """The policy fact whose fields match ``fields`` (``mode=one_of("AUTOMATIC", "MANUAL")``)."""
    return _fact_of_kind(POLICY, fields)


def active_policy() -> Condition:
    """The policy fact while the policy is not MAINTENANCE (rules may run commands)."""
    return policy(mode=other_than(PolicyMode.MAINTENANCE))


def manager_running() -> Condition:
    """The manager fact while the manager runs (not once it is closing)."""
    return _fact_of_kind(MANAGER, {"state": Phase.RUNNING})


def manager_stopping() -> Condition:
    """The manager fact once the manager is closing (for failsafe rules)."""
    return _fact_of_kind(MANAGER, {"state": Phase.STOPPING})


class Fact(Mapping[str, Any]):
    """A fact a rule matched: its fields by key (``fact["holder"]``) or as attributes
    (``fact.holder``), as in the conditions (``c.vip.holder``)."""

    # The fields of the facts (see the module's table); each fact has those of its kind.
    kind: str
    cluster: str
    name: str
    host: str
    role: str
    state: str
    local: bool
    previous_role: str
    previous_state: str
    held: bool
    holder: str
    mode: str

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_fields", fields)

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __getattr__(self, field: str) -> Any:
        if field.startswith("_"):  # not a field (and _fields itself, before __init__ set it)
            raise AttributeError(field)
        try:
            return self._fields[field]
        except KeyError:
            kind = self._fields.get("kind", "fact")
            raise AttributeError(
                f"a {kind} fact has no field {field!r}; it has {sorted(self._fields)}"
            ) from None

    def __setattr__(self, field: str, value: object) -> None:
        raise AttributeError("a fact is read-only: ask for a service action instead")

    def __repr__(self) -> str:
        return f"Fact({dict(self._fields)!r})"
