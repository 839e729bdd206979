"""Printing result tables (the benchmark and statistics commands) as Markdown or plain text."""

from __future__ import annotations


def format_table(header: list[str], body: list[list[str]], markdown: bool) -> str:
    """First column left-aligned, the others right-aligned."""
    rows = [header, *body]
    if markdown:
        rule = "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join([lines[0], rule, *lines[1:]])
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    return "\n".join(
        "  ".join(
            [row[0].ljust(widths[0])]
            + [v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)]
        )
        for row in rows
    )
