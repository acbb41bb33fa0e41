"""The ranking benchmark's plan: every ablation row is a valid training run of the variant it names,
``--set`` takes only training settings, and the mean-of-3 keys appear only when three seeds ran."""

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality_ranking as qr  # noqa: E402

from training.config import TrainConfig  # noqa: E402


@pytest.mark.parametrize("grid", ["full", "quick"])
def test_every_ablation_row_is_a_valid_run_of_its_variant(grid):
    runs = qr.ablation_runs(qr.ABLATION[grid])
    spec = qr.ABLATION[grid]
    assert len(runs) == len(spec["datasets"]) * 2 * len(spec["rows"])
    for run in runs:
        cfg = TrainConfig(protocol="cold" if run["split"] == "cold" else "random", **run["settings"])
        model = cfg.model_config()
        assert model.train_layers == run["train_layers"]
        assert (model.text_tower, model.id_embeddings) == {"hybrid": (True, True), "text": (True, False),
                                                            "id": (False, True)}[run["variant"]]
        if run["variant"] == "hybrid" and run["split"] == "cold":
            assert model.id_dropout == 0.5  # the text path must learn alone for the items it will meet cold
    depths = {layers for _, layers in qr.ABLATION["full"]["rows"] if _ == "text"}
    assert depths == {0, 2, 6}


def test_set_takes_training_settings_only():
    assert qr.setting("negatives=catalog") == ("negatives", "catalog")
    assert qr.setting("epochs=3") == ("epochs", 3) and qr.setting("id_embeddings=false") == ("id_embeddings", False)
    for bad in ("negatives", "warp=9"):
        with pytest.raises(argparse.ArgumentTypeError, match="use KEY=VALUE with KEY a TrainConfig field"):
            qr.setting(bad)


def run(ndcg: float, ease: float) -> dict:
    metrics = {"ndcg@10": ndcg, "recall@10": ndcg}
    return {"model": metrics, "popularity": metrics, "ease": {"ndcg@10": ease, "lambda": 250.0},
            "bpr": {"ndcg@10": 0.2, "recall@10": 0.2, "best_epoch": 3, "seconds": 1.0}, "seconds": 1.0, "cpu_s": 2.0}


@pytest.mark.parametrize("seeds, mean3", [([0], None), ([0, 1, 2], 0.31)])
def test_mean3_keys_need_three_seeds(seeds, mean3):
    results = {"ml100k": [run(0.30 + 0.01 * s, 0.3) for s in seeds],
               "ease_means": {"ml100k_ease_ndcg10_mean3": 0.3}}
    args = argparse.Namespace(set={})
    summary = qr.summarize(results, qr.FULL, args, seeds)
    assert summary["ml100k_ndcg10_mean3"] == mean3 and summary["ml100k_ease_ndcg10_mean3"] == 0.3
    assert summary["ml100k_ease_ndcg10"] == 0.3 and summary["ml100k_beats_ease_same_split"]
    assert summary.get("ml100k_beats_ease_mean3") == (None if mean3 is None else True)


def test_sampled_cpu_counts_a_child_that_exits_inside_the_block():
    # The shape of a Ray Train worker: it burns CPU and is gone before the block ends.
    import subprocess
    import time

    with qr.SampledCPU(every=0.05) as cpu:
        child = subprocess.Popen([sys.executable, "-c", "import time\nend = time.process_time() + 0.6\n"
                                  "while time.process_time() < end: pass\ntime.sleep(0.3)"])
        child.wait()
        time.sleep(0.1)
    assert 0.4 <= cpu.seconds < 5.0
