"""The progress lines a training worker prints, and their reader.

Rank 0 prints a step line every ``log_every`` steps and an epoch line after each validation. They are
plain text for a person reading a worker's log; ``read_line`` turns them back into numbers, which
``serendip``'s terminal shows as one progress bar (the lines reach it through Ray's worker log stream).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

_STEP = re.compile(r"\[train\] epoch (?P<epoch>\d+) (?:step \d+/\d+|done) \(run step (?P<step>\d+)/(?P<total>\d+)\):? "
                   r"loss (?P<loss>[\d.]+)(?: val_ndcg10 (?P<ndcg>[\d.]+))?.* (?P<rate>[\d.]+) samples/s(?P<stop> \(.+\))?")


@dataclass(frozen=True)
class TrainProgress:
    """Where a training run is, as one of its progress lines says."""

    epoch: int
    """Epoch of the line, from 0."""
    step: int
    """Optimizer steps of the whole run so far."""
    total: int
    """Optimizer steps the run will take at most (epochs x steps per epoch, capped by max_steps)."""
    loss: float
    """Mean training loss over the last steps (step line) or the epoch (epoch line)."""
    samples_per_s: float
    """Training examples per second over all workers."""
    val_ndcg10: float | None = None
    """Validation NDCG@10 after the epoch (epoch lines only)."""
    final: bool = False
    """Whether this is the run's last line: an epoch line at the last step, or with a reason to stop."""


def step_line(epoch: int, step: int, steps: int, run_step: int, total: int, loss: float, parts: dict[str, float],
              samples_per_s: float) -> str:
    """``[train] epoch 0 step 10/22 (run step 10/12) loss 3.7540 softmax 3.2118 bce 0.0804 302.5 samples/s``."""
    losses = "".join(f" {name} {value:.4f}" for name, value in parts.items())
    return (f"[train] epoch {epoch} step {step}/{steps} (run step {run_step}/{total}) loss {loss:.4f}{losses} "
            f"{samples_per_s:.1f} samples/s")


def epoch_line(epoch: int, run_step: int, total: int, loss: float, val_ndcg10: float, samples_per_s: float,
               stop: str | None) -> str:
    """``[train] epoch 0 done (run step 12/12): loss 1.8873 val_ndcg10 0.0525 309.8 samples/s (max_steps=12 reached)``."""
    return (f"[train] epoch {epoch} done (run step {run_step}/{total}): loss {loss:.4f} val_ndcg10 {val_ndcg10:.4f} "
            f"{samples_per_s:.1f} samples/s" + (f" ({stop})" if stop else ""))


def say(line: str) -> None:
    """Print one line once.

    Not ``print``: inside a Ray Train worker ``print`` is patched to log the line and also echo it to
    the redirected stdout, so every printed line reached the terminal twice.
    """
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def read_line(text: str) -> TrainProgress | None:
    """The progress in a step or epoch line (anywhere in ``text``: Ray prefixes a worker's lines), else None."""
    found = _STEP.search(text)
    if found is None:
        return None
    ndcg, step, total = found["ndcg"], int(found["step"]), int(found["total"])
    return TrainProgress(int(found["epoch"]), step, total, float(found["loss"]), float(found["rate"]),
                         None if ndcg is None else float(ndcg),
                         final=ndcg is not None and (step >= total or found["stop"] is not None))
