"""``serendip.json``: what a model directory is, what it was trained on and how well it did.

Fields: ``schema_version``, ``base_model``, ``text_template``, ``model_config`` (TwoTowerConfig),
``data_fingerprint`` (SHA-256 over the training input files), ``metrics``, ``calibration``,
``train_config`` and ``created``. Plain JSON, so any tool can read it and nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

SCHEMA_VERSION = 1
FILENAME = "serendip.json"


class ManifestError(ValueError):
    """serendip.json is missing, unreadable or from an unknown schema version."""


def write_manifest(model_dir: str | Path, manifest: dict) -> Path:
    """Write serendip.json (adds schema_version and created) and return its path."""
    path = Path(model_dir) / FILENAME
    body = {"schema_version": SCHEMA_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    body.update(manifest)
    path.write_text(json.dumps(body, indent=2, sort_keys=True, default=float) + "\n")
    return path


def read_manifest(model_dir: str | Path) -> dict:
    """Read and check serendip.json of a model directory."""
    path = Path(model_dir) / FILENAME
    if not path.is_file():
        raise ManifestError(f"{path}: not found; {model_dir} is not a Serendip model directory (train one with `serendip train`)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ManifestError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from err
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ManifestError(
            f"{path}: schema_version={version!r}, this Serendip reads version {SCHEMA_VERSION}; retrain or upgrade"
        )
    return manifest


def fingerprint_files(paths: list[str | Path]) -> str:
    """SHA-256 over the names and bytes of the input files, in the given order ("sha256:<hex>")."""
    digest = hashlib.sha256()
    for path in paths:
        path = Path(path)
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()
