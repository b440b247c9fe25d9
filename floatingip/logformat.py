"""Log lines an operator can grep or ship: ``key=value`` fields, their text, and the formatters
the ``floatingip`` command installs (library code installs none).

A decision (a service action the rules asked for, run or not) is logged at INFO as one record
whose message is its fields as ``key=value`` text, in a fixed order, and whose ``fields``
attribute holds them as a dict: :class:`JsonFormatter` writes them as one JSON object per line,
any other formatter prints the text.  Keys are stable: see the README's "Logging".
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "FIELDS",
    "JournalFormatter",
    "JsonFormatter",
    "TextFormatter",
    "format_fields",
    "formatter",
]

# The attribute of a LogRecord that carries its fields (logger.info(..., extra={FIELDS: {...}})).
FIELDS = "fields"
_BARE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@,+")


def _value(value: object) -> str:
    text = value if isinstance(value, str) else "-" if value is None else str(value)
    if text and all(char in _BARE for char in text):
        return text
    return json.dumps(text, ensure_ascii=False)  # quoted, with its quotes and newlines escaped


def format_fields(fields: Mapping[str, object]) -> str:
    """``key=value`` pairs in the mapping's order; a value with spaces or quotes is quoted as a
    JSON string, None is ``-``."""
    return " ".join(f"{key}={_value(value)}" for key, value in fields.items())


class TextFormatter(logging.Formatter):
    """``2026-11-28T04:02:26.123Z INFO floatingip.dispatch: decision service=vip ...``: UTC time,
    level, logger, message; a traceback's lines indented under it."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{_utc(record.created)} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info).replace("\n", "\n    ")
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    then a decision's fields as keys of their own, and ``traceback`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, Mapping):
            line.update((key, value) for key, value in fields.items() if key not in line)
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class JournalFormatter(logging.Formatter):
    """``<N>logger: message``: journald reads the ``<N>`` prefix as the syslog priority and adds
    the time itself; one line per record (a traceback's lines are indented under it)."""

    _PRIORITY: ClassVar[dict[int, int]] = {
        logging.DEBUG: 7,
        logging.INFO: 6,
        logging.WARNING: 4,
        logging.ERROR: 3,
    }

    def format(self, record: logging.LogRecord) -> str:
        priority = self._PRIORITY.get(record.levelno, 2 if record.levelno > logging.ERROR else 7)
        text = f"<{priority}>{record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info).replace("\n", "\n    ")
        return text


def formatter(log_format: str, *, journal: bool = False) -> logging.Formatter:
    """The formatter for ``--log-format`` (``text`` or ``json``); ``journal``: text for journald
    (the agent's), with priority prefixes instead of times."""
    if log_format == "json":
        return JsonFormatter()
    return JournalFormatter() if journal else TextFormatter()


def _utc(created: float) -> str:
    seconds = int(created)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{int((created - seconds) * 1000):03d}Z"
