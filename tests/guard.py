"""Call a loader in a child process with a hang and memory guard (for oversized-input tests).

The timeout and the address-space limit only detect a hang or a runaway read (before the size
limits, a 100 MB line never finished and /dev/zero was read until memory ran out); they are not
speed assertions.  Speed figures are in benchmarks/input_limits.py.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

HANG_TIMEOUT = 60.0
MEMORY_LIMIT = 2 << 30

_CHILD = """
import importlib, json, sys
from floatingip import ConfigError, FloatingIPError
module, _, name = sys.argv[1].rpartition(".")
function = getattr(importlib.import_module(module), name)
try:
    if sys.argv[2] == "stream":
        with open(sys.argv[3], "rb") as stream:
            function().load(stream)
    else:
        function(*sys.argv[3:])
except FloatingIPError as exc:
    problems = [[str(p.path), p.line, p.message] for p in getattr(exc, "problems", ())]
    outcome = {"error": type(exc).__name__, "message": str(exc), "problems": problems}
else:
    outcome = {"error": None}
print(json.dumps(outcome))
"""


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def call_guarded(function: str, *args: str, stream: bool = False) -> dict[str, object]:
    """Call ``function`` (dotted name) with ``args`` in a child; return what it raised.

    With ``stream``, ``function`` is a class whose instances ``load`` the stream ``args[0]``.
    """
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, function, "stream" if stream else "call", *args],
            capture_output=True,
            text=True,
            timeout=HANG_TIMEOUT,
            preexec_fn=_limit_memory,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{function}{args} gave no answer within {HANG_TIMEOUT:g} s (a hang)")
    assert done.returncode == 0, done.stderr[-2000:]
    outcome: dict[str, object] = json.loads(done.stdout)
    return outcome
