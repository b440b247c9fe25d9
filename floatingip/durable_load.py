"""durable_rules, imported without two modules that it imports and floatingip never lets it use.

durable.engine imports ``datetime`` and ``random`` at its top: random it never uses, datetime only
in its clock, which floatingip.engine replaces.  Together they are 0.5 MB of an idle manager's RSS
(goal: under 20 MB).  While durable is imported (first thing, by this package's ``__init__``),
stand-ins take their place in sys.modules, and are removed right after: durable keeps stand-ins
that import the real module on first use, every other importer gets the real module.  Nothing
changes if they were imported already.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

__all__ = ["OnFirstUse", "import_durable"]

UNUSED = ("datetime", "random")


class OnFirstUse(ModuleType):
    """A module that is imported when one of its attributes is first read."""

    def __getattr__(self, attribute: str) -> Any:
        if sys.modules.get(self.__name__) is self:  # read while durable was being imported
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attribute)


def import_durable() -> None:
    stand_ins = {name: OnFirstUse(name) for name in UNUSED if name not in sys.modules}
    sys.modules.update(stand_ins)
    try:
        importlib.import_module("durable.lang")  # and durable.engine
    finally:
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]


import_durable()
