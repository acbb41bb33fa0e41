"""Versioned snapshots of the bandit state: no pickle, written atomically, the newest two kept.

A snapshot is a directory ``snapshots/<lsn>/`` holding each policy's state through
``recsys.policies.state.write_state`` (arrays + JSON header), ``state.json`` (counters, arms, the
impression-log cursor), ``pending.json`` (impressions still in their reward window) and
``arrays.npz`` (plain numeric arrays, loaded with ``allow_pickle=False``). It is written under a
dot-name, fsynced and renamed, so a directory without the dot is complete.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recsys.policies import Policy, load_state
from recsys.policies.state import write_state
from serving.wal import fsync_dir

FORMAT_VERSION = 1


@dataclass
class BanditSnapshot:
    """What a snapshot restores."""

    lsn: int
    """Last WAL record the snapshot covers."""
    header: dict
    """Counters, arms, serial cursor and impression-log cursor (state.json)."""
    policies: dict[tuple[str, str], Policy]
    """Policy objects by (arm, policy name)."""
    pending: list[dict]
    """Pending-impression records (pending.json)."""
    arrays: dict[str, np.ndarray]
    """Numeric side tables (arrays.npz)."""


def _fsync_tree(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    for path in [*[p for p in directory.rglob("*") if p.is_dir()], directory]:
        fsync_dir(path)


def write_snapshot(root: Path, lsn: int, header: dict, policies: dict[tuple[str, str], tuple[dict, dict]],
                   pending: list[dict], arrays: dict[str, np.ndarray]) -> Path:
    """Write snapshot ``lsn`` under ``root`` atomically and return its directory.

    ``policies`` maps (arm, policy) to a state copied with ``recsys.policies.state.copy_state``, so the
    writing may run in a worker thread while the policies learn on.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{lsn:012d}"
    tmp = root / f".{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    files = []
    for i, ((arm, name), (state_arrays, state_header)) in enumerate(sorted(policies.items())):
        path = write_state(state_arrays, state_header, tmp / f"policy-{i:02d}.safetensors")
        files.append({"arm": arm, "policy": name, "file": Path(path).name})
    state = {"format": FORMAT_VERSION, **header, "lsn": lsn, "policy_files": files}
    (tmp / "state.json").write_text(json.dumps(state, indent=1, allow_nan=False))
    (tmp / "pending.json").write_text(json.dumps(pending, separators=(",", ":"), allow_nan=False))
    np.savez(tmp / "arrays.npz", **arrays)
    _fsync_tree(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_dir(root)
    return final


def read_snapshot(directory: Path) -> BanditSnapshot:
    """Load one snapshot directory."""
    directory = Path(directory)
    state = json.loads((directory / "state.json").read_text())
    if state.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"{directory}/state.json: snapshot format {state.get('format')} is not {FORMAT_VERSION}; "
            "serve it with the version that wrote it or start from an empty state_dir"
        )
    policies = {(f["arm"], f["policy"]): load_state(directory / f["file"]) for f in state["policy_files"]}
    pending = json.loads((directory / "pending.json").read_text())
    with np.load(directory / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return BanditSnapshot(lsn=int(state["lsn"]), header=state, policies=policies, pending=pending, arrays=arrays)


def _complete(root: Path) -> list[Path]:
    if not Path(root).is_dir():
        return []
    return sorted(p for p in Path(root).iterdir() if p.is_dir() and p.name.isdigit() and (p / "state.json").exists())


def latest_snapshot(root: Path) -> BanditSnapshot | None:
    """The newest complete snapshot under ``root``, or None when there is none."""
    snapshots = _complete(root)
    return read_snapshot(snapshots[-1]) if snapshots else None


def prune_snapshots(root: Path, keep: int = 2) -> None:
    """Delete all but the newest ``keep`` snapshots and any half-written one."""
    for path in _complete(root)[:-keep]:
        shutil.rmtree(path)
    for path in Path(root).glob(".*"):
        shutil.rmtree(path, ignore_errors=True)
