"""Exercises: nbgrader assignments for every lecture notebook, and self-checks that test the student's code.

* :mod:`.checks` — :func:`check` calls a student's function on fresh inputs
  and compares it with the library (cs231n's :func:`rel_error`), with the
  library's own implementation switched off meanwhile.
* :mod:`.tasks_01_04`, :mod:`.tasks_05_08`, :mod:`.tasks_09_14` — one :class:`Task`
  per exercise (fresh inputs, the library's reference, what is switched off, a hint).
* :mod:`.assignments` — student versions generated from the nbgrader source
  notebooks with nbgrader's own preprocessors (``introspect-lab exercises``).
"""

from __future__ import annotations

from . import tasks_01_04, tasks_05_08, tasks_09_14  # noqa: F401  (each registers its tasks)
from .checks import TASKS, Task, UseYourOwnCode, check, rel_error

__all__ = ["TASKS", "Task", "UseYourOwnCode", "check", "rel_error"]
