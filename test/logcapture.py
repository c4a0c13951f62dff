"""Messages of one of the package's loggers, captured on that logger itself: under ROS 2, importing ``launch``
makes every later logger non-propagating (LaunchLogger), so pytest's caplog, which listens at the root, hears
nothing there."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def logged(name: str, level: int = logging.WARNING) -> Iterator[list[str]]:
    """The messages logged to ``name`` at ``level`` or above while the block runs."""
    logger, handler = logging.getLogger(name), _Messages()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
