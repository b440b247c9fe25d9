"""Fixtures for tests on real network namespaces."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from floatingip.sandbox import Sandbox
from tests.conftest import require_program, require_root


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    require_root()
    require_program("ip")
    with Sandbox(["db1", "db2", "client"]) as sandbox:
        yield sandbox
