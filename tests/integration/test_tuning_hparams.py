"""The hyperparameter sweep on a real local Ray: 4 TorchTrainer trials under ASHA, tiny BERT, tiny shop."""

from __future__ import annotations

import json

import pytest

from recsys.model import TwoTower, build_tiny_base
from recsys.simulator import SimulateConfig, simulate
from training.config import TrainConfig
from tuning.hparams import HparamSweepConfig, run_hparam_sweep
from tuning.space import HparamSpace, Param, SearchSpaceError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("hparam-shop")
    simulate(SimulateConfig(out=root / "shop", users=300, items=120, days=10, seed=0, quiet=True))
    return root / "shop", build_tiny_base(root / "tiny")


def tiny_train(base) -> TrainConfig:
    """A 2-layer, 32-hidden BERT and small batches: a trial trains in seconds."""
    return TrainConfig(base=str(base), dim=32, batch_size=64, max_text_len=16, user_layers=1, history_len=10,
                       epochs=2, timeout_s=120, log_every=10_000)


@pytest.mark.timeout(600)
def test_asha_sweep_of_four_trials_exports_a_servable_model(ray_session, shop, tmp_path):
    data, base = shop
    # Resources on the fixture's 2 CPUs: each trial holds only TRAIN_DRIVER, its one Train worker half a
    # CPU, and two trials run at once. That leaves a CPU for each trial's dataset read on the driver and
    # for the placement group of an ASHA-stopped trial, which Train frees only once its cleaner sees the
    # controller gone (slow under load). With 1-CPU workers both CPUs were taken and the sweep could
    # stall with trials PENDING.
    cfg = HparamSweepConfig(
        data=data, out=tmp_path / "sweep", trials=4, scheduler="asha", cpus_per_worker=0.5, max_concurrent_trials=2,
        space=HparamSpace(search=("lr", "temperature", "epochs"), epochs=Param(1, 2, integer=True)),
        train=tiny_train(base),
    )
    outcome = run_hparam_sweep(cfg)

    assert len(outcome.table) == 4 and (outcome.table["status"] == "ok").all()
    assert outcome.best_value == outcome.table["best_val_ndcg10"].max() > 0
    model = TwoTower.from_pretrained(outcome.model_dir)  # the exported dir is a normal model dir
    assert model.config.dim == 32
    assert (outcome.model_dir / "serendip.json").exists()
    best = json.loads((tmp_path / "sweep" / "best.json").read_text())
    assert best["params"] == outcome.best_params
    report = outcome.report.read_text()
    assert "## Ranked trials" in report and "val_ndcg10" in report
    assert (tmp_path / "sweep" / "plots" / "val_ndcg10_by_epoch.png").read_bytes().startswith(PNG_MAGIC)
    assert outcome.usage["trials_peak_concurrent"] == 2  # both CPUs busy: two trials, one worker each
    assert list(cfg.experiment_dir.glob("*/events.out.tfevents.*"))  # TensorBoard logs are on


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (lambda: {"space": HparamSpace(search=("lr", "momentum"))}, SearchSpaceError,
         r"HparamSpace.search: unknown parameter\(s\) \['momentum'\]"),
        (lambda: {"search": "grid", "trials": 2, "space": HparamSpace(search=("lr", "batch_size"))}, SearchSpaceError,
         r"grid search has 9 points but --trials is 2; raise --trials to 9"),
        (lambda: {"data": "empty"}, ValueError, r"data dir .*empty: no items.parquet or items.csv"),
        (lambda: {"train": TrainConfig(base="/nonexistent/bert")}, ValueError, r"/nonexistent/bert"),
        (lambda: {"max_concurrent_trials": -1}, SearchSpaceError, r"--max-concurrent-trials=-1: must be >= 0"),
    ],
)
def test_bad_sweep_input_fails_before_any_trial(ray_session, shop, tmp_path, kwargs, error, match):
    data, base = shop
    (tmp_path / "empty").mkdir()
    with pytest.raises(error, match=match):
        args = {"data": data, "train": tiny_train(base), **kwargs()}
        args["data"] = tmp_path / "empty" if args["data"] == "empty" else args["data"]
        run_hparam_sweep(HparamSweepConfig(out=tmp_path / "sweep", **args))
    assert not (tmp_path / "sweep" / "tune" / "hparams").exists()
