"""Stage ``eval_summary``: every ``metrics/eval/<method>-<task>.json`` -> one table,
``metrics/eval/summary.md`` (methods x tasks)."""

from __future__ import annotations

from pathlib import Path

from models.eval.protocol import summary_table


def build_eval_summary(eval_dir: Path, out: Path) -> str:
    table = summary_table(eval_dir)
    out.write_text(table + "\n")
    return table
