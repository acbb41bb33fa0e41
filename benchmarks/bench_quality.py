"""Quality benchmarks: `--task ranking` (NDCG/Recall vs popularity, EASE and BPR, and the ablation of the
item tower) or `--task bandit` (regret vs greedy and MABWiser). Each prints one JSON object last."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

TASKS = {"ranking": "quality_ranking", "bandit": "quality_bandit"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, add_help=False)
    parser.add_argument("--task", choices=sorted(TASKS), required=True)
    args, rest = parser.parse_known_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    module = importlib.import_module(TASKS[args.task])
    return module.main(rest) or 0


if __name__ == "__main__":
    raise SystemExit(main())
