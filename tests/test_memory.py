"""floatingip.memory: what loading freed leaves the process (glibc's malloc_trim)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

CHILD = r"""
import json
from floatingip.memory import release_freed_memory
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
start = rss()
garbage = [bytes(1000) for _ in range(50_000)]  # 50 MB through malloc, as loading frees it
pin = bytes(1000)  # allocated last: the heap's top stays in use, so free() cannot shrink it
del garbage
held = rss()
released = release_freed_memory()
print(json.dumps({"start": start, "held": held, "released": released, "after": rss()}))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_memory_freed_by_loading_is_given_back_to_the_system() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, input=""
    )
    assert result.returncode == 0, result.stderr
    rss = json.loads(result.stdout)
    assert rss["held"] - rss["start"] > 40  # freed, but still the process's
    assert rss["released"] is True
    assert rss["held"] - rss["after"] > 40  # given back
