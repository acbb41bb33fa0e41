"""serving/config.yaml maps onto the same typed config as `serendip serve` (no Ray needed)."""

from pathlib import Path

import yaml

from recsys.policies import Arm
from serving.config import ServeConfig

CONFIG = Path(__file__).resolve().parents[2] / "serving" / "config.yaml"


def test_the_serve_yaml_parses_into_serve_config_and_arms():
    config = yaml.safe_load(CONFIG.read_text())
    assert config["http_options"]["host"] == "127.0.0.1"
    (app,) = config["applications"]
    assert app["import_path"] == "serving.app:build_app"
    cfg = ServeConfig.from_args(app["args"])
    assert "arms" not in app["args"]  # arms change live through the bandit's user_config
    (bandit,) = [d for d in app["deployments"] if d["name"] == "Bandit"]
    arms = [Arm.from_value(a) for a in bandit["user_config"]["arms"]]
    assert [a.name for a in arms] == ["control", "explore"]
    assert cfg.scorer_max_replicas >= cfg.scorer_replicas


def test_the_serve_yaml_keeps_one_bandit():
    from serving.app import check_single_bandit

    (app,) = yaml.safe_load(CONFIG.read_text())["applications"]
    check_single_bandit(app)
