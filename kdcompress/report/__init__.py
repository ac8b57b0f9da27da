"""Result schema, Markdown report and machine/version records."""

from kdcompress.report.result import RESULT_SCHEMA_VERSION, build_result, markdown, write_report

__all__ = ["RESULT_SCHEMA_VERSION", "build_result", "markdown", "write_report"]
