import json

import pytest
import torch

from capsdeploy.errors import CapsDeployError, UsageError
from capsdeploy.model import CapsNet
from capsdeploy.model.checkpoint import (
    build_config_doc,
    default_normalization,
    load_run,
    save_run,
    sha256_file,
)


def _save(tmp_path, cfg):
    model = CapsNet(cfg)
    doc = build_config_doc(cfg, [str(i) for i in range(10)], default_normalization(), metrics={"acc": 1})
    save_run(tmp_path / "run", model, doc)
    return model


def test_round_trip_gives_identical_outputs(tmp_path, tiny_cfg):
    model = _save(tmp_path, tiny_cfg).eval()
    loaded, info = load_run(tmp_path / "run")
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(model(x)[0], loaded(x)[0])
    assert info.model == tiny_cfg and info.class_names[3] == "3"
    assert info.weights_sha256 == sha256_file(tmp_path / "run" / "model.safetensors")
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "run").iterdir())


def test_routing_override_loads_same_weights(tmp_path, tiny_cfg):
    _save(tmp_path, tiny_cfg)
    m5, _ = load_run(tmp_path / "run", routing_iters=5)
    assert m5.config.routing_iters == 5 and m5.digits.iterations == 5


def test_mismatched_config_is_a_clear_error(tmp_path, tiny_cfg):
    _save(tmp_path, tiny_cfg)
    cfg_path = tmp_path / "run" / "config.json"
    doc = json.loads(cfg_path.read_text())
    doc["model"]["primary_caps"] = 8
    cfg_path.write_text(json.dumps(doc))
    with pytest.raises(CapsDeployError, match="different runs"):
        load_run(tmp_path / "run")


def test_not_a_run_directory(tmp_path):
    with pytest.raises(UsageError, match="no such run directory"):
        load_run(tmp_path / "nope")
    with pytest.raises(UsageError, match="not a capsdeploy run directory"):
        load_run(tmp_path)


def test_run_info_answers_what_the_stages_ask_of_the_training_data(tmp_path, tiny_cfg):
    from capsdeploy.model.checkpoint import RunInfo, read_run_info

    doc = build_config_doc(
        tiny_cfg,
        [str(i) for i in range(tiny_cfg.num_classes)],
        default_normalization(1),
        dataset={
            "name": "fashion-mnist",
            "train_split": "digits",
            "test_split": "held",
            "multimnist": {"pairs_per_digit": 2},
        },
        training={"data_dir": "/data"},
    )
    info = read_run_info(save_run(tmp_path / "run", CapsNet(tiny_cfg), doc))
    assert info.test_split() == ("fashion-mnist", "held")
    assert info.test_split("other") == ("fashion-mnist", "other")
    assert info.train_split() == ("fashion-mnist", "digits")
    assert info.multimnist and info.data_dir == "/data"
    # A config without a dataset block (written by hand): MNIST's own default splits.
    bare = RunInfo(tiny_cfg, [], {}, {}, tmp_path)
    assert bare.test_split() == ("mnist", "t10k") and bare.train_split() == ("mnist", "train")
    assert not bare.multimnist and bare.data_dir is None
