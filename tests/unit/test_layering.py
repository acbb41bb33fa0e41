"""recsys/ is the Ray-free core: no file imports Ray, and importing it all loads no Ray."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECSYS = ROOT / "recsys"


def ray_imports(source: str, label: str) -> list[str]:
    """'label:line: module' for every import of ray or ray.* in one source text."""
    found = []
    for node in ast.walk(ast.parse(source, filename=label)):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found += [f"{label}:{node.lineno}: {name}" for name in names if name == "ray" or name.startswith("ray.")]
    return found


def test_no_recsys_file_imports_ray():
    files = sorted(RECSYS.rglob("*.py"))
    assert files, f"no Python files under {RECSYS}"
    offenders = [hit for path in files
                 for hit in ray_imports(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))]
    assert not offenders, "recsys/ must not import Ray (it is the Ray-free core):\n" + "\n".join(offenders)


def test_the_ast_check_sees_every_import_form():
    source = "import os, ray\nfrom ray import serve\ndef f():\n    from ray.train import report\nimport rayon\n"
    assert ray_imports(source, "probe.py") == ["probe.py:1: ray", "probe.py:2: ray", "probe.py:4: ray.train"]


IMPORT_ALL = """
import importlib, pathlib, sys
files = sorted(pathlib.Path("recsys").rglob("*.py"))
names = [".".join(f.with_suffix("").parts).removesuffix(".__init__") for f in files]
for name in names:
    importlib.import_module(name)
loaded = sorted(m for m in sys.modules if m == "ray" or m.startswith("ray."))
print(len(names), "modules;", "ray loaded:" if loaded else "no ray", *loaded[:5])
sys.exit(1 if loaded else 0)
"""


@pytest.mark.slow  # imports torch and transformers in a fresh process: ~10 s, more on a busy machine
def test_importing_every_recsys_module_loads_no_ray():
    done = subprocess.run([sys.executable, "-c", IMPORT_ALL], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-3000:]}"
    assert "no ray" in done.stdout
