"""What a lifecycle transition built, released in reverse order by the transition that ends it (ROS-free).

configure builds the pipeline (detectors and their runners), the publishers, the tf listener and the diagnostics
tasks; activate builds the subscriptions (colour, depth, camera info), the depth synchroniser and the timers.
deactivate releases what activate built, cleanup what configure built; shutdown and an error release both.
"""

from __future__ import annotations

from typing import Callable


class Held:
    """Resources of one lifecycle stage, each with the call that releases it."""

    def __init__(self) -> None:
        self._items: list[tuple[str, Callable[[], None]]] = []

    def hold(self, name: str, release: Callable[[], None]) -> None:
        self._items.append((name, release))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._items]

    def release(self) -> list[str]:
        """Release everything, the last built first; every release runs even when one fails. Returns the
        failures as 'name: error' lines; nothing is held afterwards either way."""
        errors = []
        while self._items:
            name, release = self._items.pop()
            try:
                release()
            except Exception as e:
                errors.append(f"{name}: {type(e).__name__}: {e}")
        return errors
