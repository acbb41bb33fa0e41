"""``python -m training`` == ``serendip train``: fine-tune the two-tower model with Ray Train."""

import tyro

from training.trainer import TrainConfig, train

raise SystemExit(train(tyro.cli(TrainConfig, prog="python -m training")))
