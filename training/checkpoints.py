"""Training checkpoints without pickle: the model as a full model directory, the optimizer's
tensors in safetensors with a JSON header, and the loop's counters in JSON.

Layout of one checkpoint directory::

    model/              a servable model directory (TwoTower.save_pretrained + item table)
    optimizer.safetensors, optimizer.json
    train_state.json    epoch, global_step, best, bad_epochs, history of epoch metrics
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from recsys.model import ItemTable, TwoTower

MODEL_DIR = "model"


def optimizer_to_files(optimizer: torch.optim.Optimizer, directory: Path) -> None:
    """Write the optimizer's per-parameter tensors and its param groups (JSON)."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, entries in state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    save_file(tensors, str(directory / "optimizer.safetensors"))
    header = {"param_groups": state["param_groups"], "scalars": scalars}
    (directory / "optimizer.json").write_text(json.dumps(header, default=float))


def optimizer_from_files(optimizer: torch.optim.Optimizer, directory: Path) -> None:
    """Restore what :func:`optimizer_to_files` wrote into an optimizer over the same parameters."""
    header = json.loads((directory / "optimizer.json").read_text())
    state: dict[int, dict] = {}
    for name, tensor in load_file(str(directory / "optimizer.safetensors")).items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = tensor
    for pid, entries in header["scalars"].items():
        state.setdefault(int(pid), {}).update(entries)
    optimizer.load_state_dict({"state": state, "param_groups": header["param_groups"]})


def save_checkpoint(directory: Path, core: TwoTower, optimizer: torch.optim.Optimizer, train_state: dict,
                    item_table: ItemTable, manifest: dict) -> Path:
    """Write a complete checkpoint (see the module docstring) and return ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    core.save_pretrained(directory / MODEL_DIR, item_table=item_table, manifest=manifest)
    optimizer_to_files(optimizer, directory)
    (directory / "train_state.json").write_text(json.dumps(train_state, indent=2, default=float))
    return directory


def load_train_state(directory: Path) -> tuple[TwoTower, dict]:
    """The model (train mode) and loop counters of a checkpoint; the optimizer loads separately."""
    model = TwoTower.from_pretrained(directory / MODEL_DIR).train()
    return model, json.loads((directory / "train_state.json").read_text())
