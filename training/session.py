"""Where a training loop runs: inside a Ray Train worker group, or in one plain Python process.

The loop talks only to a :class:`Session`, so the same ``train_loop`` serves ``TorchTrainer``,
unit tests and anything else that wants one process and no Ray (Ray stays a thin shell around the loop).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import torch


class Session:
    """What the loop needs from its runtime: rank, device, data shard, checkpoints, reporting."""

    rank: int = 0
    world_size: int = 1

    @property
    def device(self) -> torch.device:
        """The device this worker trains on."""
        raise NotImplementedError

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move to the device (and wrap for data parallelism when there are several workers)."""
        return model.to(self.device)

    def examples(self) -> pd.DataFrame:
        """This worker's share of the training examples."""
        raise NotImplementedError

    def latest_checkpoint(self):
        """A context manager yielding the latest checkpoint directory, or None when starting fresh."""
        raise NotImplementedError

    def report(self, metrics: dict, checkpoint_dir: Path | None) -> None:
        """Publish one epoch's metrics (and, from rank 0, its checkpoint). A barrier for all ranks."""
        raise NotImplementedError

    def all_reduce(self, values: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Reduce a tensor over all workers ("sum" or "min"); identity for one worker.

        nccl reduces CUDA tensors only, gloo CPU ones: the tensor travels to the right device and back.
        """
        if self.world_size == 1:
            return values
        device = self.device if self.device.type == "cuda" else torch.device("cpu")
        moved = values.to(device)
        reduce_op = {"sum": torch.distributed.ReduceOp.SUM, "min": torch.distributed.ReduceOp.MIN}[op]
        torch.distributed.all_reduce(moved, op=reduce_op)
        return moved.to(values.device)


class RaySession(Session):
    """Inside ``TorchTrainer``: ranks, device, data shard and checkpoints from ``ray.train``."""

    def __init__(self) -> None:
        import ray.train

        context = ray.train.get_context()
        self.rank = context.get_world_rank()
        self.world_size = context.get_world_size()

    @property
    def device(self) -> torch.device:
        import ray.train.torch

        return ray.train.torch.get_device()

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        import ray.train.torch

        return ray.train.torch.prepare_model(model)

    def examples(self) -> pd.DataFrame:
        import ray.train

        shard = ray.train.get_dataset_shard("train")
        frames = list(shard.iter_batches(batch_size=8192, batch_format="pandas"))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def latest_checkpoint(self):
        import contextlib

        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return contextlib.nullcontext(None)
        return _as_path(checkpoint.as_directory())

    def report(self, metrics: dict, checkpoint_dir: Path | None) -> None:
        import ray.train

        checkpoint = ray.train.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint)


class _as_path:
    """Wrap ``Checkpoint.as_directory()`` so the loop receives a Path."""

    def __init__(self, manager) -> None:
        self.manager = manager

    def __enter__(self) -> Path:
        return Path(self.manager.__enter__())

    def __exit__(self, *exc) -> None:
        self.manager.__exit__(*exc)


class LocalSession(Session):
    """One process, no Ray: examples from the prepared Parquet, checkpoints under ``run_dir``."""

    def __init__(self, run_dir: str | Path, examples_path: str | Path, device: str = "cpu") -> None:
        self.run_dir = Path(run_dir)
        self.examples_path = examples_path
        self._device = torch.device(device)
        self.reports: list[dict] = []

    @property
    def device(self) -> torch.device:
        return self._device

    def examples(self) -> pd.DataFrame:
        return pq.read_table(self.examples_path).to_pandas()

    def _checkpoints(self) -> list[Path]:
        return sorted((self.run_dir / "local_checkpoints").glob("epoch_*"))

    def latest_checkpoint(self):
        import contextlib

        found = self._checkpoints()
        return contextlib.nullcontext(found[-1] if found else None)

    def report(self, metrics: dict, checkpoint_dir: Path | None) -> None:
        self.reports.append(dict(metrics))
        if checkpoint_dir is not None:
            target = self.run_dir / "local_checkpoints" / f"epoch_{int(metrics['epoch']):04d}"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(checkpoint_dir, target)
            (target / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))

    def best_checkpoint(self, metric: str = "val_ndcg10") -> Path | None:
        """The kept checkpoint with the highest ``metric``."""
        scored = [(json.loads((p / "metrics.json").read_text()).get(metric, float("-inf")), p) for p in self._checkpoints()]
        return max(scored)[1] if scored else None
