"""DVC stage ``eval_summary``: ``metrics/eval/*.json`` -> ``metrics/eval/summary.md``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.stages.eval_summary import build_eval_summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--eval-dir", default="metrics/eval")
    args = ap.parse_args(argv)
    print(build_eval_summary(Path(args.eval_dir), Path(args.eval_dir) / "summary.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
