"""The public API: everything in floatingip.__all__ exists, and the errors share one root."""

from __future__ import annotations

import floatingip


def test_everything_exported_exists() -> None:
    missing = [name for name in floatingip.__all__ if not hasattr(floatingip, name)]
    assert missing == []


def test_every_error_is_a_floatingip_error() -> None:
    errors = [
        getattr(floatingip, name)
        for name in floatingip.__all__
        if isinstance(getattr(floatingip, name), type) and name.endswith(("Error", "Timeout"))
    ]
    assert len(errors) >= 12
    assert all(issubclass(error, floatingip.FloatingIPError) for error in errors)
