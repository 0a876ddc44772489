"""nbgrader configuration of the introspect-lab course folder (see docs/teaching.md).

Run nbgrader from this folder: ``nbgrader generate_assignment ex03_saliency_and_cam``,
``nbgrader autograde ex03_saliency_and_cam``, ... The autograder's kernels need
``introspect_lab`` importable (``pip install -e '.[dev]'`` in the repository).
"""

from pathlib import Path

c = get_config()  # noqa: F821
c.CourseDirectory.root = str(Path(__file__).resolve().parent)
c.CourseDirectory.course_id = "introspect-lab"
# each set loads a model and runs small checks; allow a slow classroom machine
c.Execute.timeout = 600
