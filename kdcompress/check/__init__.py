"""The CI regression gate: ``kdcompress baseline save`` and ``kdcompress check`` (DESIGN §7)."""

from kdcompress.check.gate import (
    Subject,
    TestData,
    check,
    load_baseline,
    save_baseline,
    subject_from_file,
    subject_from_run,
)
from kdcompress.check.output import junit_xml, markdown, verdict_line
from kdcompress.check.verdict import Verdict, compare

__all__ = ["Subject", "TestData", "Verdict", "check", "compare", "junit_xml", "load_baseline", "markdown",
           "save_baseline", "subject_from_file", "subject_from_run", "verdict_line"]
