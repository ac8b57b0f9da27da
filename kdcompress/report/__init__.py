"""The result (built once from the stages' records), its table, the Markdown and HTML reports."""
