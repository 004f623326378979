"""`import-weights torchvision`: a torchvision state dict gives the same logits in kerascnn.

The torchvision layouts are built in plain PyTorch (tests/torchvision_layouts.py,
checked against torchvision's published parameter counts) with random weights
and batch-norm statistics, saved as .pth, imported through the CLI and
compared on the same random images (NCHW for PyTorch, NHWC for Keras).
"""

import hashlib
import json
import sys
import zipfile

import keras
import numpy as np
import pytest

import torch  # a test dependency (pyproject [test]): a missing one fails here, never skips

import torchvision_layouts  # noqa: E402

from kerascnn.cli.app import main  # noqa: E402
from kerascnn.weights import read_metadata  # noqa: E402
from kerascnn.weights.torchvision import FAMILIES, IGNORED_PREFIXES  # noqa: E402

torch.set_num_threads(2)


def _import(tmp_path, name, num_classes=1000):
    torch_model = torchvision_layouts.build(name, num_classes)
    pth = tmp_path / f"{name}.pth"
    torch.save(torch_model.state_dict(), pth)
    out = tmp_path / f"{name}.keras"
    assert main(["import-weights", "torchvision", name, str(pth), "--output", str(out)]) == 0
    return torch_model, out


def _logits_both(torch_model, keras_model, size=224, batch=2):
    images = np.random.default_rng(0).normal(size=(batch, size, size, 3)).astype("float32")
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
    got = keras.ops.convert_to_numpy(keras_model(images, training=False))
    return got, expected


def _one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("name", torchvision_layouts.NAMES)
def test_layouts_and_mapping_tables_cover_every_torchvision_tensor(name):
    # Shapes only (meta device): the layouts have torchvision's published
    # parameter counts, and each table names every module that holds tensors.
    with torch.device("meta"):
        model = torchvision_layouts.layout(name)
    params = sum(p.numel() for k, p in model.named_parameters() if not k.startswith("aux"))
    assert params == torchvision_layouts.NUM_PARAMS[name]
    modules = {k.rsplit(".", 1)[0] for k in model.state_dict()}
    modules = {m for m in modules if not m.startswith(IGNORED_PREFIXES.get(name, ()))}
    assert {row[0] for row in FAMILIES[name](name)[2]} == modules


def test_every_mapped_name_has_a_layout():
    assert set(FAMILIES) == set(torchvision_layouts.NAMES)


@pytest.mark.parametrize("name", ["alexnet", "vgg16", "vgg16_bn", "googlenet", "resnet18", "resnet50"])
def test_imported_model_gives_the_torchvision_logits(tmp_path, name, capsys):
    torch_model, out = _import(tmp_path, name)
    printed = capsys.readouterr().out
    assert f"torchvision {name} -> kerascnn " in printed and str(out) in printed
    keras_model = keras.saving.load_model(out)
    trainable = sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights)
    assert trainable == torchvision_layouts.NUM_PARAMS[name]
    got, expected = _logits_both(torch_model, keras_model)
    assert got.shape == expected.shape == (2, 1000)
    scale = np.abs(expected).max()  # PyTorch's default init: 0.02 (VGG) to 0.7 (ResNet-50)
    assert scale > 1e-2  # logits that say something
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    # Relative to the logits' scale too, so that small logits cannot hide a
    # small systematic error (a wrong epsilon gives ~5e-4); float32 round-off is ~1e-6.
    assert np.abs(got - expected).max() <= 1e-4 * scale


def test_weights_file_records_how_to_rebuild_and_feed_the_model(tmp_path, capsys):
    _, out = _import(tmp_path, "resnet18", num_classes=7)
    assert "102 tensors mapped, written to" in capsys.readouterr().out  # 20 convs, 20 BNs x 4, fc x 2
    meta = read_metadata(out)
    assert meta["model"] == "resnet18" and meta["model_options"] == {} and meta["num_classes"] == 7
    assert meta["image_size"] == [224, 224]
    assert meta["normalization"]["channel_order"] == "rgb"
    np.testing.assert_allclose(meta["normalization"]["mean"], [123.675, 116.28, 103.53])
    np.testing.assert_allclose(meta["normalization"]["std"], [58.395, 57.12, 57.375])
    digest = hashlib.sha256((tmp_path / "resnet18.pth").read_bytes()).hexdigest()
    assert meta["source"] == f"torchvision resnet18 from resnet18.pth (sha256 {digest})"
    assert keras.saving.load_model(out).output_shape == (None, 7)


def test_googlenet_file_records_torchvisions_layout_and_input_scale(tmp_path, capsys):
    _, out = _import(tmp_path, "googlenet", num_classes=5)
    assert "auxiliary-head tensors left out" in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta["model"] == "googlenet"
    assert meta["model_options"] == {
        "batch_norm": True, "layout": "torchvision", "aux_logits": False, "dropout": 0.2
    }
    # transform_input: the published weights see (x / 255 - 0.5) / 0.5.
    assert meta["normalization"]["mean"] == meta["normalization"]["std"] == [127.5] * 3
    model = keras.saving.load_model(out)
    assert model.get_layer("inception_3a_5x5").kernel.shape == (3, 3, 16, 32)
    assert model.get_layer("conv1_7x7_bn").epsilon == 1e-3
    assert model.get_layer("dropout").rate == 0.2


def test_checkpoint_of_another_architecture_is_refused_in_one_line(tmp_path, capsys):
    pth = tmp_path / "resnet18.pth"
    torch.save(torchvision_layouts.build("resnet18").state_dict(), pth)
    out = tmp_path / "out.keras"
    assert main(["import-weights", "torchvision", "resnet50", str(pth), "--output", str(out)]) == 2
    err = _one_line_error(capsys)
    assert "layer1.0.conv1.weight has shape [64, 64, 3, 3]" in err, err
    assert "conv2_block1_1_conv needs [64, 64, 1, 1]" in err, err
    assert not out.exists() and list(tmp_path.iterdir()) == [pth]


def test_wrapped_and_dataparallel_state_dicts_are_read(tmp_path):
    torch_model = torchvision_layouts.build("resnet18", num_classes=3)
    state = {"epoch": 90, "state_dict": {f"module.{k}": v for k, v in torch_model.state_dict().items()}}
    pth = tmp_path / "checkpoint.pth.tar"
    torch.save(state, pth)
    assert main(["import-weights", "torchvision", "resnet18", str(pth)]) == 0
    model = keras.saving.load_model(tmp_path / "checkpoint.pth.keras")  # default: beside FILE
    np.testing.assert_array_equal(model.get_layer("predictions").kernel.numpy(), torch_model.fc.weight.detach().numpy().T)
    np.testing.assert_array_equal(
        model.get_layer("conv5_block2_2_bn").moving_variance.numpy(), torch_model.layer4[1].bn2.running_var.numpy()
    )


@pytest.mark.parametrize("edit, message", [
    (lambda sd: sd.pop("layer4.1.bn2.running_var"), "no layer4.1.bn2.running_var (kerascnn resnet18 layer "
                                                    "conv5_block2_2_bn needs [512])"),
    (lambda sd: sd.update({"fc2.weight": torch.zeros(3, 3)}), "1 tensor(s) torchvision's resnet18 does not "
                                                              "have, first fc2.weight [3, 3]"),
    (lambda sd: sd.update({"layer1.0.conv1.bias": torch.zeros(64)}), "first layer1.0.conv1.bias [64]"),
], ids=["missing", "unexpected", "bias-kerascnn-lacks"])
def test_missing_and_unexpected_tensors_are_named(tmp_path, capsys, edit, message):
    state = torchvision_layouts.build("resnet18", num_classes=3).state_dict()
    edit(state)
    pth = tmp_path / "edited.pth"
    torch.save(state, pth)
    assert main(["import-weights", "torchvision", "resnet18", str(pth)]) == 2
    assert message in _one_line_error(capsys)
    assert list(tmp_path.iterdir()) == [pth]


def test_bad_inputs_are_one_line_errors_and_nothing_is_written(tmp_path, capsys, monkeypatch):
    not_a_checkpoint = tmp_path / "notes.pth"
    not_a_checkpoint.write_text("not a checkpoint")
    (tmp_path / "folder.keras").mkdir()
    cases = [
        (["vgg16", str(not_a_checkpoint)], "not a PyTorch checkpoint"),
        (["vgg16", str(tmp_path / "missing.pth")], "no such file"),
        (["googlenet_cifar", str(not_a_checkpoint)], "no torchvision mapping"),
        (["vgg16", str(not_a_checkpoint), "--output", str(tmp_path / "x.h5")], "must end in .keras"),
        (["vgg16", str(not_a_checkpoint), "--output", str(tmp_path / "folder.keras")], "is a folder"),
    ]
    for args, message in cases:
        assert main(["import-weights", "torchvision", *args]) == 2
        assert message in _one_line_error(capsys)
    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    assert main(["import-weights", "torchvision", "vgg16", str(not_a_checkpoint)]) == 2
    assert _one_line_error(capsys).endswith("error: reading .pth files needs PyTorch: pip install -e '.[bench]'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.keras", "notes.pth"]


def test_existing_output_is_kept_unless_forced(tmp_path, capsys):
    torch_model, out = _import(tmp_path, "resnet18", num_classes=3)
    before = out.read_bytes()
    pth = tmp_path / "resnet18.pth"
    assert main(["import-weights", "torchvision", "resnet18", str(pth), "--output", str(out)]) == 2
    assert "exists; pass --force" in _one_line_error(capsys) and out.read_bytes() == before
    assert main(["import-weights", "torchvision", "resnet18", str(pth), "--output", str(out), "--force"]) == 0
    with zipfile.ZipFile(out) as archive:
        assert json.loads(archive.read("kerascnn.json"))["model"] == "resnet18"
