"""``python -m tuning {hparams,exploration} ...`` == ``serendip tune ...``: Ray Tune sweeps."""

import sys

import tyro

from tuning.exploration import ExplorationSweepConfig, tune_exploration
from tuning.hparams import HparamSweepConfig, tune_hparams

SWEEPS = {"hparams": (HparamSweepConfig, tune_hparams), "exploration": (ExplorationSweepConfig, tune_exploration)}

if len(sys.argv) < 2 or sys.argv[1] not in SWEEPS:
    raise SystemExit("usage: python -m tuning {hparams,exploration} [--help]")
config_cls, run = SWEEPS[sys.argv[1]]
raise SystemExit(run(tyro.cli(config_cls, args=sys.argv[2:], prog=f"python -m tuning {sys.argv[1]}")))
