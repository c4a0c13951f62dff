"""TEST STAND-IN, labelled: imitates what Humble's launch_testing pytest plugin (launch_testing 1.0.x, loaded by
every pytest run on a machine where ROS 2 is sourced, ``colcon test`` included) does to a test session, so CI
shows without ROS what ``colcon test`` will meet (shared/notes/platform-facts.md section 10):

- its ``pytest_pycollect_makemodule`` hook imports every test module while collecting
  (``find_launch_test_entrypoint``, which catches only SyntaxError): anything else raised at import time, a
  module-level ``pytest.importorskip`` included, aborts the collection of the whole session;
- importing ``launch`` calls ``logging.setLoggerClass(LaunchLogger)``, whose loggers do not propagate, so the
  loggers modules create afterwards never reach the root logger (nor pytest's ``caplog``).

Load it with ``PYTHONPATH=test pytest -p launch_testing_standin`` (-p imports it before pytest's ``pythonpath``).
"""

from __future__ import annotations

import logging
from pathlib import Path


class NonPropagatingLogger(logging.Logger):
    """What launch's LaunchLogger does to every logger created after ``import launch``: no propagation."""

    def __init__(self, name: str, level: int = logging.NOTSET) -> None:
        super().__init__(name, level)
        self.propagate = False


def pytest_configure(config) -> None:
    logging.setLoggerClass(NonPropagatingLogger)


def pytest_unconfigure(config) -> None:
    logging.setLoggerClass(logging.Logger)


def pytest_pycollect_makemodule(module_path: Path, parent):
    """Import the module while collecting, as launch_testing's ``find_launch_test_entrypoint`` does
    (``path.pyimport()``; pytest 7's ``import_path`` is the same import); only a SyntaxError is swallowed.
    Returning None leaves the module's collection to pytest. Humble's plugin needs pytest < 8, and so does this."""
    from _pytest.pathlib import import_path

    try:
        import_path(module_path, root=parent.config.rootpath)
    except SyntaxError:
        pass
    return None
