"""Hypothesis for the property tests, or, where it is not installed (a ROS machine without python3-hypothesis),
decorators that skip those tests with the reason, so every test module imports either way."""

from __future__ import annotations

from typing import Any

import pytest

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # collected anyway; each property test skips with the reason
    class _Absent:
        """Stands for strategies and health checks at decoration time; never drawn from."""

        def __getattr__(self, name: str) -> Any:
            return self

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return self

        def __or__(self, other: Any) -> Any:
            return self

    st = HealthCheck = _Absent()  # type: ignore[assignment]

    def given(*args: Any, **kwargs: Any) -> Any:  # type: ignore[no-redef]
        return pytest.mark.skip(reason="hypothesis is not installed (pip install hypothesis, or "
                                       "apt install python3-hypothesis)")

    def settings(*args: Any, **kwargs: Any) -> Any:  # type: ignore[no-redef]
        return lambda test: test

__all__ = ["HealthCheck", "given", "settings", "st"]
