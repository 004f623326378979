"""--init-from: VGG incremental depth (Simonyan & Zisserman 2015, section 3.1)."""

import json

import keras
import numpy as np
import pytest

from kerascnn.storage import rundir
from kerascnn.cli.app import main
from kerascnn.config import RunConfig
from kerascnn.training.fit import fit
from kerascnn.weights.incremental import layers_to_copy

SMALL = dict(dataset="synthetic", limit_train=64, val_split=0.02, batch_size=32, epochs=1, schedule="constant",
             augment="none", model_options={"width_multiplier": 0.25})
FLAGS = ["--dataset", "synthetic", "--limit-train", "64", "--val-split", "0.02", "--batch-size", "32",
         "--epochs", "1", "--augment", "none"]


@pytest.fixture(scope="module")
def vgg11_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("a") / "vgg11"
    fit(RunConfig.from_flags("vgg11", run_dir=str(run), **SMALL), log=lambda *_: None, verbose=0)
    return run


def _weights(model, name):
    return [w.numpy() for w in model.get_layer(name).weights]


def test_net_a_layers_are_the_papers_first_four_convs_and_three_fc():
    assert layers_to_copy("vgg11") == [
        "block1_conv1", "block2_conv1", "block3_conv1", "block3_conv2", "fc1", "fc2", "predictions",
    ]
    assert layers_to_copy("vgg11_bn")[:4] == ["block1_conv1", "block1_bn1", "block2_conv1", "block2_bn1"]


def test_vgg16_starts_from_vgg11_copied_layers_equal_and_the_rest_random(tmp_path, vgg11_run):
    # One frozen epoch keeps the copied layers as they were copied.
    config = RunConfig.from_flags("vgg16", init_from=str(vgg11_run), freeze_backbone=1,
                                  run_dir=str(tmp_path / "run"), **{k: v for k, v in SMALL.items() if k != "model_options"})
    result = fit(config, log=lambda *_: None, verbose=0)
    saved = json.loads((result.run_dir / rundir.CONFIG).read_text())
    assert saved["model_options"]["width_multiplier"] == 0.25  # the source's options are the defaults
    t = saved["resolved"]["transfer"]
    assert t["source_model"] == "vgg11" and t["copied"] == layers_to_copy("vgg11")
    assert "block1_conv2" in t["initialised"] and "block3_conv3" in t["initialised"]
    source = keras.saving.load_model(vgg11_run / rundir.BEST, compile=False)
    deeper = keras.saving.load_model(result.run_dir / rundir.BEST, compile=False)
    for name in layers_to_copy("vgg11"):
        assert all(np.array_equal(a, b) for a, b in zip(_weights(deeper, name), _weights(source, name))), name
    # block4_conv1 exists in both with the same shape but is intermediate: not copied.
    assert not np.array_equal(_weights(deeper, "block4_conv1")[0], _weights(source, "block4_conv1")[0])


def _one_line(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


def test_refusals_are_one_line_and_write_nothing(tmp_path, capsys, vgg11_run):
    run = tmp_path / "r"
    line = _one_line(capsys, ["fit", "vgg11", "--init-from", str(vgg11_run), *FLAGS, "--run-dir", str(run)])
    assert "shallower" in line
    line = _one_line(capsys, ["fit", "vgg16", "--init-from", str(vgg11_run), "--width-multiplier", "0.5",
                              *FLAGS, "--run-dir", str(run)])
    assert "block1_conv1" in line and "same --head, --width-multiplier" in line
    line = _one_line(capsys, ["fit", "vgg16_bn", "--init-from", str(vgg11_run), *FLAGS, "--run-dir", str(run)])
    assert "batch normalisation" in line
    line = _one_line(capsys, ["fit", "resnet20", "--init-from", str(vgg11_run), *FLAGS, "--run-dir", str(run)])
    assert "not a VGG" in line
    fake = tmp_path / "resnet_run"
    fake.mkdir()
    (fake / rundir.CONFIG).write_text(json.dumps({"model": "resnet20", "resolved": {}}))
    (fake / rundir.BEST).write_bytes(b"")
    line = _one_line(capsys, ["fit", "vgg16", "--init-from", str(fake), *FLAGS, "--run-dir", str(run)])
    assert "resnet20, not a VGG" in line
    assert not run.exists()
