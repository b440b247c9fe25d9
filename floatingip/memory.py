"""Giving back what loading freed.

Loading a manager (compiling the rule files, parsing service files, durable_rules' JSON) frees
most of what it allocates, but glibc's malloc keeps freed memory inside the process for reuse: an
idle manager would carry it for life (0.5 MB of its 20 MB, measured).  ``malloc_trim(0)``
(glibc 2.8 and later, malloc_trim(3)) returns every wholly free page of every arena to the system;
it is thread-safe and takes well under a millisecond.  Other C libraries (musl) have no such call
and no such retention to undo: nothing is done there.
"""

from __future__ import annotations

import ctypes
import logging

__all__ = ["release_freed_memory"]

logger = logging.getLogger(__name__)


def release_freed_memory() -> bool:
    """Return the memory malloc holds free to the system; True if some was returned."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # not glibc
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    released = bool(trim(0))
    logger.debug("malloc_trim: %s", "memory returned" if released else "nothing to return")
    return released
