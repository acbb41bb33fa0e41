"""Quality benchmarks: `--task ranking` (NDCG/Recall vs popularity, EASE and BPR, and the ablation of the
item tower) or `--task bandit` (regret vs greedy and MABWiser). Each prints one JSON object last."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
from pathlib import Path

TASKS = {"ranking": "quality_ranking", "bandit": "quality_bandit"}
EXTRA = {"ranking": "quality_query_rerank"}
"""A second script whose keys a task's run adds (query-conditioned NDCG, the reranker's gain and cost);
left out with ``--only``, which picks parts of the first."""


class _Tee:
    """Writes through to stdout and keeps the last line written."""

    def __init__(self, out) -> None:
        self.out, self.last, self._line = out, "", ""

    def write(self, text: str) -> int:
        self.out.write(text)
        lines = (self._line + text).split("\n")
        self._line = lines[-1]
        self.last = next((line for line in reversed(lines) if line.strip()), self.last)
        return len(text)

    def flush(self) -> None:
        self.out.flush()


def last_json(run, argv: list[str]) -> dict:
    """Run a benchmark's ``main(argv)``, its output passing through; the JSON object it printed last."""
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        run(argv)
    return json.loads(tee.last)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, add_help=False)
    parser.add_argument("--task", choices=sorted(TASKS), required=True)
    args, rest = parser.parse_known_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    module = importlib.import_module(TASKS[args.task])
    if args.task not in EXTRA or any(a.split("=")[0] == "--only" for a in rest):
        return module.main(rest) or 0
    first = last_json(module.main, rest)
    second = last_json(importlib.import_module(EXTRA[args.task]).main, rest)
    print(json.dumps({**first, **second}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
