"""recsys.model: the two-tower model on a tiny random BERT (2 layers, hidden 32), no Ray."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.model import (
    BaseModelError,
    ItemTable,
    ItemTableError,
    ManifestError,
    ModelConfigError,
    TwoTower,
    TwoTowerConfig,
    build_tiny_base,
    check_base,
    fit_calibration,
    load_item_table,
    read_manifest,
    save_item_table,
)
from recsys.model.calibration import CalibrationError, Calibrator

ITEMS = pd.DataFrame({
    "item_id": [10, 11, 12, 13],
    "title": ["red trail shoe", "blue wool hat", "green socks", "grey rain jacket"],
    "category": ["shoes", "hats", "socks", "jackets"],
    "brand": ["Northpeak", "Lanark", None, "Northpeak"],
    "price": [89.0, 25.0, 6.5, None],
    "attributes": ['{"colour": "red"}', None, "", '{"material": "nylon"}'],
})


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    return build_tiny_base(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture()
def model(tiny_base):
    torch.manual_seed(0)
    cfg = TwoTowerConfig(base=str(tiny_base), dim=16, user_heads=2, history_len=4, train_layers=1)
    return TwoTower.from_base(cfg, item_ids=np.array([10, 11, 12])).eval()


def test_item_vectors_are_unit_length_and_deterministic(model):
    a, b = model.embed_items(ITEMS), model.embed_items(ITEMS, batch_size=3)
    assert a.shape == (4, 16) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_cold_item_scores_from_text_alone(model):
    cold = ITEMS.assign(item_id=[90, 91, 92, 93])
    text_only, warm = model.embed_items(cold), model.embed_items(ITEMS)
    assert np.isfinite(text_only).all()
    assert not np.allclose(text_only[:3], warm[:3])  # warm items add their ID vector
    np.testing.assert_allclose(text_only[3], warm[3], atol=1e-6)  # item 13 has no ID vector either


def test_padding_does_not_change_a_user(model):
    vecs = torch.as_tensor(model.embed_items(ITEMS))
    events = torch.tensor([[1, 3, 0, 0]])
    short = model.encode_users(vecs[None, :2], events[:, :2], torch.tensor([[True, True]]))
    padded = model.encode_users(vecs[None, :4], events, torch.tensor([[True, True, False, False]]))
    torch.testing.assert_close(short, padded, atol=1e-5, rtol=1e-5)


def test_query_joins_the_history(model):
    vecs = torch.as_tensor(model.embed_items(ITEMS))
    q = torch.as_tensor(model.embed_queries(["waterproof jacket"]))
    assert q.shape == (1, 16)
    mask = torch.tensor([[True, True]])
    with_q = model.encode_users(vecs[None, :2], torch.tensor([[1, 1]]), mask, q)
    without = model.encode_users(vecs[None, :2], torch.tensor([[1, 1]]), mask)
    assert not torch.allclose(with_q, without)


def test_empty_history_still_gives_a_user(model):
    user = model.encode_users(torch.zeros(2, 3, 16), torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.bool))
    assert torch.isfinite(user).all() and user.shape == (2, 16)


def test_save_then_load_gives_identical_scores(model, tmp_path):
    model.calibrator = fit_calibration(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0, 0, 1, 1]))
    table = model.item_table(ITEMS)
    model.save_pretrained(tmp_path / "m", item_table=table, manifest={"data_fingerprint": "sha256:x"})
    for name in ("config.json", "model.safetensors", "tokenizer.json", "towers.safetensors", "serendip.json",
                 "item_table.safetensors"):
        assert (tmp_path / "m" / name).is_file(), name
    loaded = TwoTower.from_pretrained(tmp_path / "m")
    np.testing.assert_array_equal(loaded.embed_items(ITEMS), model.embed_items(ITEMS))
    np.testing.assert_array_equal(load_item_table(tmp_path / "m").vectors, table.vectors)
    hist = torch.as_tensor(table.vectors[None, :3])
    args = (hist, torch.tensor([[1, 2, 3]]), torch.ones(1, 3, dtype=torch.bool))
    torch.testing.assert_close(loaded.encode_users(*args), model.encode_users(*args), rtol=0, atol=0)
    np.testing.assert_array_equal(loaded.click_probability(np.array([0.5, 2.5])), model.click_probability(np.array([0.5, 2.5])))
    manifest = read_manifest(tmp_path / "m")
    assert manifest["data_fingerprint"] == "sha256:x" and manifest["model_config"]["dim"] == 16
    assert manifest["text_template"].startswith("title")


def test_no_pickle_files_in_a_model_dir(model, tmp_path):
    model.save_pretrained(tmp_path / "m")
    suffixes = {p.suffix for p in (tmp_path / "m").iterdir()}
    assert not suffixes & {".bin", ".pt", ".pkl", ".pickle"}


def test_partial_fine_tuning_freezes_the_lower_layers(model):
    trainable = {n for n, p in model.named_parameters() if p.requires_grad and n.startswith("item_tower.encoder.")}
    assert trainable and all(n.startswith("item_tower.encoder.encoder.layer.1.") for n in trainable)


def test_unloadable_manifest(tmp_path):
    with pytest.raises(ManifestError, match="not a Serendip model directory"):
        TwoTower.from_pretrained(tmp_path)
    (tmp_path / "serendip.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(ManifestError, match="schema_version=99, this Serendip reads version 1"):
        read_manifest(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dim": 0}, r"TwoTowerConfig.dim=0: must be >= 1"),
        ({"train_layers": -1}, r"train_layers=-1: must be >= 0 \(0 = frozen BERT\)"),
        ({"dim": 10, "user_heads": 4}, "user_heads=4: must divide dim=10"),
        ({"id_dropout": 1.0}, r"id_dropout=1.0: must be in \[0, 1\)"),
        ({"temperature": 0.0}, "temperature=0.0: must be > 0"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ModelConfigError, match=match):
        TwoTowerConfig(**kwargs)


def test_more_train_layers_than_the_base_has(tiny_base):
    with pytest.raises(ModelConfigError, match="the base model has only 2 layers; use 0..2"):
        TwoTower.from_base(TwoTowerConfig(base=str(tiny_base), dim=16, user_heads=2, train_layers=3))


def test_bad_base_models(tmp_path, tiny_base):
    (tmp_path / "empty").mkdir()
    gpt = tmp_path / "gpt"
    gpt.mkdir()
    (gpt / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (gpt / "model.safetensors").write_bytes(b"")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text(json.dumps({"model_type": "bert"}))
    cases = [
        (tmp_path / "empty", "no config.json; pass a Hugging Face model directory"),
        (gpt, "model_type='gpt2' is not BERT-family"),
        (pickled, "no model.safetensors; only safetensors weights are loaded"),
        ("no-such-org/no-such-model", "not a local directory and not in the Hugging Face cache"),
    ]
    for base, match in cases:
        with pytest.raises(BaseModelError, match=match):
            check_base(base)
    assert check_base(tiny_base) == str(tiny_base)


def test_item_table_round_trip_and_lookup(tmp_path):
    table = ItemTable(np.array([5, 3, 9]), np.eye(3, dtype=np.float32))
    save_item_table(tmp_path, table)
    loaded = load_item_table(tmp_path)
    np.testing.assert_array_equal(loaded.item_ids, [5, 3, 9])
    rows, found = loaded.rows(np.array([9, 4, 5]))
    np.testing.assert_array_equal(found, [True, False, True])
    assert rows[0] == 2 and rows[2] == 0
    bigger = loaded.upsert(np.array([4, 5]), np.ones((2, 3)))
    assert len(bigger) == 4 and bigger.vectors[bigger.rows(np.array([5]))[0][0]].sum() == 3


@pytest.mark.parametrize(
    ("ids", "vecs", "match"),
    [
        (np.array([1, 1]), np.zeros((2, 2)), "item_ids contain duplicates"),
        (np.array([1, 2]), np.zeros((3, 2)), r"must be \(n,\) and \(n, d\) with the same n"),
    ],
)
def test_item_table_errors(ids, vecs, match):
    with pytest.raises(ItemTableError, match=match):
        ItemTable(ids, vecs)


def test_missing_item_table(tmp_path):
    with pytest.raises(ItemTableError, match="no item table; train or export the model"):
        load_item_table(tmp_path)


def test_platt_and_isotonic_calibration():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=4000)
    labels = rng.random(4000) < 1 / (1 + np.exp(-(2 * scores - 1)))
    platt = fit_calibration(scores, labels, "platt")
    assert platt.params["a"] == pytest.approx(2, abs=0.3) and platt.params["b"] == pytest.approx(-1, abs=0.2)
    iso = fit_calibration(scores, labels, "isotonic")
    probs = iso(np.array([-3.0, 0.0, 3.0]))
    assert probs[0] <= probs[1] <= probs[2] and 0 <= probs.min() and probs.max() <= 1
    assert Calibrator.from_dict(json.loads(json.dumps(iso.to_dict()))).params == iso.params


def test_platt_never_inverts_the_ranking():
    # A model worse than chance on validation: Platt's unconstrained slope would be negative.
    rng = np.random.default_rng(1)
    scores = rng.normal(size=2000)
    labels = rng.random(2000) < 1 / (1 + np.exp(-(-1.5 * scores - 2)))
    platt = fit_calibration(scores, labels, "platt")
    assert platt.params["a"] == 0.0
    np.testing.assert_allclose(platt(np.array([-5.0, 0.0, 5.0])), labels.mean(), rtol=1e-9)


@pytest.mark.parametrize(
    ("scores", "labels", "method", "match"),
    [
        ([0.1, 0.2], [1, 1], "platt", "labels are all one class"),
        ([0.1], [1, 0], "platt", "1 scores but 2 labels"),
        ([np.nan, 0.2], [1, 0], "platt", "scores contain NaN or inf"),
        ([0.1, 0.2], [1, 0], "beta", "calibration method 'beta'"),
    ],
)
def test_calibration_errors(scores, labels, method, match):
    with pytest.raises(CalibrationError, match=match):
        fit_calibration(np.array(scores), np.array(labels), method)


def test_uncalibrated_model_says_how_to_fix(model):
    with pytest.raises(ValueError, match="no calibration; train it with `serendip train`"):
        model.click_probability(np.array([1.0]))
