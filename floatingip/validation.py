"""Checks of what callers hand the public API: every wrong value is a FloatingIPError.

A cluster manager embedding floatingip, a shell or a script may pass anything: ``None``, a
number, bytes, a list, a path-like name (``../../etc/passwd``), a NUL.  Each is refused at the
entry point with a UsageError that names the argument and what it should be, before anything is
changed, rather than a TypeError from deep inside (or, worse, accepted).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from floatingip.config import name_problem
from floatingip.engine import collision_message, describe_fact, identity_collisions
from floatingip.errors import (
    DataSourceDefinitionError,
    DataSourceError,
    EngineError,
    Problem,
    ServiceDefinitionError,
    UsageError,
)

__all__ = [
    "MAX_INTERVAL",
    "MIN_MONITOR_INTERVAL",
    "check_callable",
    "check_fact_identities",
    "check_instance",
    "check_interval",
    "check_items",
    "check_mapping",
    "check_name",
    "check_optional_name",
    "check_path",
    "check_seconds",
    "shown",
]

T = TypeVar("T")

# Below this a monitor does little but probe; above it (a day) it is a mistake for "off" (0),
# and far above it the thread's wait overflows.
MIN_MONITOR_INTERVAL = 0.05
MAX_INTERVAL = 86400.0


def shown(value: object) -> str:
    """A value as an error message shows it: its type and a bounded repr."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def check_instance(value: object, kind: type[T] | tuple[type, ...], what: str, expected: str) -> T:
    """``value`` if it is a ``kind`` (never a bool where a number is wanted); UsageError else."""
    wants_bool = kind is bool or (isinstance(kind, tuple) and bool in kind)
    if not isinstance(value, kind) or (isinstance(value, bool) and not wants_bool):
        raise UsageError(f"{what} must be {expected}, not {shown(value)}")
    return value  # type: ignore[return-value]


def check_name(value: object, what: str, error: type[UsageError] = DataSourceError) -> str:
    """A plain name (letters, digits, '.', '_', '-'): it ends up in facts, paths, logs, shell."""
    if not isinstance(value, str):
        raise error(f"{what} name must be a string, not {shown(value)}")
    why = name_problem(value, what)
    if why is not None:
        raise error(why)
    return value


def check_optional_name(
    value: object, what: str, error: type[UsageError] = DataSourceError
) -> str | None:
    return None if value is None else check_name(value, what, error)


def check_items(value: object, kind: type[T], what: str, expected: str) -> list[T]:
    """The items of an iterable (a list, tuple, generator...) that must each be a ``kind``."""
    if isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(value, Iterable):
        raise UsageError(f"{what} must be an iterable of {expected}, not {shown(value)}")
    items = list(value)
    for item in items:
        if not isinstance(item, kind):
            raise UsageError(f"{what} must hold only {expected} objects, not {shown(item)}")
    return items


def check_mapping(value: object, what: str, *, optional: bool = False) -> Mapping[Any, Any]:
    """A mapping (None, when ``optional``: an empty one)."""
    if value is None and optional:
        return {}
    return check_instance(value, Mapping, what, "a mapping")


def check_callable(value: object, what: str) -> Callable[..., Any]:
    if not callable(value):
        raise UsageError(f"{what} must be callable, not {shown(value)}")
    return value


def check_path(value: object, what: str) -> Path:
    """A directory or file name given as str or os.PathLike, without NUL."""
    if not isinstance(value, (str, os.PathLike)):
        raise UsageError(f"{what} must be a path (str or os.PathLike), not {shown(value)}")
    path = Path(value)
    if "\x00" in str(path) or not str(value):
        raise UsageError(f"{what} {str(value)!r} is not a usable path")
    return path


def check_seconds(
    value: object,
    what: str,
    *,
    minimum: float = 0.0,
    maximum: float = MAX_INTERVAL,
    zero: bool = True,
) -> float:
    """A finite number of seconds in [minimum, maximum] (or 0 when ``zero``)."""
    seconds = float(check_instance(value, (int, float), what, "a number of seconds"))
    if zero and seconds == 0:
        return 0.0
    if not math.isfinite(seconds) or not minimum <= seconds <= maximum:
        off = "0 (off) or " if zero else ""
        raise UsageError(
            f"{what} must be {off}between {minimum:g} and {maximum:g} seconds, not {value!r}"
        )
    return seconds


def check_interval(value: object, what: str = "monitor interval") -> float:
    """A monitor interval: 0 (off), or from MIN_MONITOR_INTERVAL up to a day."""
    return check_seconds(value, what, minimum=MIN_MONITOR_INTERVAL)


def check_fact_identities(facts: Iterable[tuple[str, Path | None]]) -> None:
    """Refuse, before any fact is asserted, facts of which two would share a durable_rules
    identity: the later one's file in a ServiceDefinitionError or DataSourceDefinitionError,
    or an EngineError for a fact that came through the API (no file)."""
    paths = dict(facts)
    for fact_id, other in identity_collisions(paths):
        message = collision_message(fact_id, describe_fact(other))
        if paths.get(other) is not None:
            message += f" (it is defined in {paths[other]})"
        path = paths[fact_id]
        if path is None:
            raise EngineError(message)
        if fact_id.startswith("service:"):
            raise ServiceDefinitionError([Problem(path, None, message)])
        raise DataSourceDefinitionError([Problem(path, None, message)])
