"""Exercises: nbgrader assignments for every lecture notebook, and self-checks that test the student's code.

* :mod:`.checks` — :func:`check` calls a student's function on fresh inputs
  and compares it with the library (cs231n's :func:`rel_error`), with the
  library's own implementation switched off meanwhile.
* :mod:`.tasks` — one :class:`Task` per exercise (inputs, reference, hints).
* :mod:`.nbgrader` — student versions generated from the nbgrader source
  notebooks with nbgrader's own preprocessors (``introspect-lab exercises``).
"""

from __future__ import annotations

from . import tasks  # noqa: F401  (registers the tasks)
from .checks import TASKS, Task, UseYourOwnCode, check, rel_error

__all__ = ["TASKS", "Task", "UseYourOwnCode", "check", "rel_error"]
