"""Teacher loading and student families."""

from kdcompress.models.load import Teacher, load_teacher
from kdcompress.models.students import STUDENTS, build_student

__all__ = ["STUDENTS", "Teacher", "build_student", "load_teacher"]
