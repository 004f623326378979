"""--weights imagenet / PATH / RUN_DIR and --freeze-backbone: loading by layer name, normalisation, phases."""

import json

import keras
import numpy as np
import pytest

from kerascnn.storage import rundir
from kerascnn.cli.app import main
from kerascnn.config import RunConfig
from kerascnn.data.preprocessing import Preprocessing
from kerascnn.models import create_model
from kerascnn.training.fit import fit
from kerascnn.weights import imagenet, save_weights_file, transfer
from interrupt import StopAfter

QUIET = dict(log=lambda *_: None, verbose=0)
SMALL = ["--dataset", "synthetic", "--limit-train", "64", "--val-split", "0.02", "--batch-size", "32",
         "--epochs", "1", "--schedule", "constant", "--augment", "none"]


def _weights(model, name):
    return [w.numpy() for w in model.get_layer(name).weights]


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_resnet_v1_options_reproduce_keras_applications_resnet50():
    """The Keras-compatible variant loaded by name computes what keras.applications computes."""
    ref = keras.applications.ResNet50(weights=None, include_top=False, pooling="avg", input_shape=(64, 64, 3))
    rng = np.random.default_rng(0)
    for layer in ref.layers:  # non-trivial BN statistics, so a misplaced one would show
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.normal(0, 0.1, b.shape),
                               rng.normal(0, 0.1, m.shape), rng.uniform(0.5, 1.5, v.shape)])
    net = create_model("resnet50", include_top=False, pooling="avg", input_shape=(64, 64, 3),
                       **imagenet.KERAS_IMAGENET["resnet50"].options)
    report = transfer.copy_by_name(net, transfer.layer_arrays(ref), "keras ResNet50")
    assert not report.new and not report.reinitialised and len(report.loaded) == 106
    x = rng.uniform(-120, 120, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(net(x).numpy(), ref(x).numpy(), rtol=1e-5, atol=1e-4)
    # The project's own v1.5 is a different network: same names and shapes, other outputs.
    v15 = create_model("resnet50", include_top=False, pooling="avg", input_shape=(64, 64, 3), stem="imagenet")
    with pytest.raises(Exception, match="conv1_conv"):  # no conv biases in v1.5
        transfer.copy_by_name(v15, transfer.layer_arrays(ref), "keras ResNet50")


def test_caffe_preprocessing_equals_keras_preprocess_input_and_round_trips():
    prep = Preprocessing((8, 8), **{k: tuple(v) if isinstance(v, list) else v
                                      for k, v in imagenet.CAFFE_NORMALIZATION.items()})
    images = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3)).astype("float32")
    expected = keras.applications.vgg16.preprocess_input(images.copy())
    np.testing.assert_allclose(prep(images).numpy(), expected, atol=1e-4)
    assert Preprocessing.from_dict(prep.to_dict()) == prep
    assert "channel_order" not in Preprocessing((8, 8), (1, 1, 1), (1, 1, 1)).to_dict()  # old format kept


def _one_line_error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


def test_models_without_keras_weights_point_to_import_weights(tmp_path, capsys):
    line = _one_line_error(capsys, ["fit", "resnet18", "--weights", "imagenet", *SMALL, "--run-dir", str(tmp_path / "r")])
    assert "no ImageNet weights for resnet18" in line and "import-weights torchvision resnet18" in line
    assert not (tmp_path / "r").exists()


def test_offline_download_fails_in_one_line_naming_url_folder_and_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(imagenet, "BASE_URL", "http://127.0.0.1:9/")
    line = _one_line_error(
        capsys, ["fit", "vgg16", "--weights", "imagenet", "--image-size", "32", *SMALL, "--run-dir", str(tmp_path / "r")]
    )
    name = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"  # 32x32: the FC layers cannot be used
    assert f"http://127.0.0.1:9/vgg16/{name}" in line and str(tmp_path / "keras" / "models") in line
    assert line.endswith(f"as {name}")
    assert not (tmp_path / "r").exists() and not (tmp_path / "keras" / "models" / name).exists()


def test_a_cached_imagenet_file_is_used_without_network(tmp_path, monkeypatch, small_synthetic_test_set):
    from keras.src.legacy.saving import legacy_h5_format
    import h5py

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(imagenet, "BASE_URL", "http://127.0.0.1:9/")  # any download attempt would fail
    # small_synthetic_test_set: the full-width VGG-16 tests every generated test image, plain and
    # mirrored (seconds at 500), and nothing here depends on how many there are.
    keras.utils.set_random_seed(7)
    ref = keras.applications.VGG16(weights=None, include_top=False)
    path = tmp_path / "keras" / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as f:  # the legacy format of Keras' published files
        legacy_h5_format.save_weights_to_hdf5_group(f, ref)

    config = RunConfig.from_flags(
        "vgg16", dataset="synthetic", limit_train=64, val_split=0.02, batch_size=32, epochs=1, image_size=(32, 32),
        schedule="constant", augment="none", weights="imagenet", freeze_backbone=1, run_dir=str(tmp_path / "run"),
        precision="float32",  # the features are compared with Keras' float32 VGG16 to 1e-3
    )
    result = fit(config, **QUIET)
    saved = json.loads((result.run_dir / rundir.CONFIG).read_text())
    t = saved["resolved"]["transfer"]
    assert t["file"] == path.name and "block5_conv3" in t["loaded"] and "fc1" in t["new"]
    assert saved["resolved"]["preprocessing"]["channel_order"] == "bgr"
    assert saved["resolved"]["mean"] == imagenet.CAFFE_NORMALIZATION["mean"]
    best = keras.saving.load_model(result.run_dir / rundir.BEST, compile=False)
    # The backbone was frozen for the only epoch: it is the file's, and computes what Keras' model computes.
    for name in ("block1_conv1", "block5_conv3"):
        assert _same(_weights(best, name), _weights(ref, name))
    features = keras.Model(best.input, best.get_layer("block5_pool").output)
    x = np.random.default_rng(0).uniform(-100, 100, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(features(x).numpy(), ref(x).numpy(), rtol=1e-5, atol=1e-3)


@pytest.fixture
def vgg8_file(tmp_path):
    """A 1000-class kerascnn weights file of a thin vgg11_bn (random weights, non-trivial BN statistics)."""
    options = {"width_multiplier": 0.25, "head": "compact"}
    keras.utils.set_random_seed(3)
    model = create_model("vgg11_bn", num_classes=1000, input_shape=(32, 32, 3), **options)
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([g, b, rng.normal(0, 1, m.shape), rng.uniform(1, 2, v.shape)])
    meta = {
        "model": "vgg11_bn", "model_options": options, "num_classes": 1000, "image_size": [32, 32],
        "normalization": {"mean": [120.0, 110.0, 100.0], "std": [60.0, 60.0, 60.0], "channel_order": "rgb"},
        "source": "test",
    }
    path = save_weights_file(model, tmp_path / "vgg11_bn.keras", meta)
    return path, model


def test_a_1000_class_weights_file_fits_a_10_class_model_with_a_new_head(tmp_path, vgg8_file):
    path, source = vgg8_file
    config = RunConfig.from_flags(
        "vgg11_bn", dataset="synthetic", limit_train=64, val_split=0.02, batch_size=32, epochs=1, schedule="constant",
        augment="none", weights=str(path), freeze_backbone=1, run_dir=str(tmp_path / "run"),
    )
    result = fit(config, **QUIET)
    saved = json.loads((result.run_dir / rundir.CONFIG).read_text())
    assert saved["model_options"]["width_multiplier"] == 0.25  # the file's options are the defaults
    assert saved["resolved"]["mean"] == [120.0, 110.0, 100.0]  # the file's normalisation, not the data's
    t = saved["resolved"]["transfer"]
    assert list(t["reinitialised"]) == ["predictions"] and "1000 classes" in t["reinitialised"]["predictions"]
    best = keras.saving.load_model(result.run_dir / rundir.BEST, compile=False)
    assert best.output_shape[-1] == 10
    for name in ("block1_conv1", "block1_bn1", "block5_conv1", "fc1", "fc2"):  # frozen: still the file's
        assert _same(_weights(best, name), _weights(source, name)), name


def test_a_backbone_mismatch_is_one_line_and_writes_nothing(tmp_path, capsys, vgg8_file):
    path, _ = vgg8_file
    run = tmp_path / "r"
    line = _one_line_error(capsys, ["fit", "vgg11_bn", "--weights", str(path), "--width-multiplier", "0.5",
                                    *SMALL, "--run-dir", str(run)])
    assert "block1_conv1" in line and "3x3x3x16" in line and "3x3x3x32" in line
    assert not run.exists()
    line = _one_line_error(capsys, ["fit", "vgg13_bn", "--weights", str(path), *SMALL, "--run-dir", str(run)])
    assert "holds weights of vgg11_bn, not vgg13_bn" in line and not run.exists()
    line = _one_line_error(capsys, ["fit", "vgg8", "--weights", str(tmp_path / "nope.keras"), *SMALL])
    assert "does not exist" in line


class Snapshots(keras.callbacks.Callback):
    """Backbone weights and BN statistics at the end of every epoch, trainable flags at its start."""

    def __init__(self):
        super().__init__()
        self.weights, self.trainable = {}, {}

    def on_epoch_begin(self, epoch, logs=None):
        self.trainable[epoch] = self.model.get_layer("block1_conv1").trainable

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch] = {n: _weights(self.model, n) for n in ("block1_conv1", "block1_bn1", "predictions")}


def test_freeze_backbone_phases_survive_resume(tmp_path, vgg8_file):
    path, source = vgg8_file
    config = RunConfig.from_flags(
        "vgg11_bn", dataset="synthetic", limit_train=64, val_split=0.02, batch_size=32, epochs=3, schedule="constant",
        augment="none", weights=str(path), freeze_backbone=1, lr=0.02, run_dir=str(tmp_path / "run"),
    )
    first = Snapshots()
    with pytest.raises(KeyboardInterrupt):
        fit(config, **QUIET, extra_callbacks=[first, StopAfter(1)])
    frozen, thawed = first.weights[0], first.weights[1]
    assert first.trainable == {0: False, 1: True}
    assert _same(frozen["block1_conv1"], _weights(source, "block1_conv1"))
    assert _same(frozen["block1_bn1"], _weights(source, "block1_bn1"))  # moving statistics untouched too
    assert not _same(thawed["block1_conv1"], frozen["block1_conv1"])
    assert not _same(thawed["block1_bn1"][2:], frozen["block1_bn1"][2:])  # BN back in training mode

    second = Snapshots()
    fit(resume_dir=tmp_path / "run", **QUIET, extra_callbacks=[second])
    assert second.trainable == {2: True}
    history = np.genfromtxt(tmp_path / "run" / rundir.HISTORY, delimiter=",", names=True)
    assert list(history["backbone_frozen"]) == [1, 0, 0]
    np.testing.assert_allclose(history["learning_rate"], [0.02, 0.002, 0.002], rtol=1e-6)
    phases = json.loads((tmp_path / "run" / rundir.CONFIG).read_text())["resolved"]["transfer"]["phases"]
    assert [p["epochs"] for p in phases] == [[1, 1], [2, 3]] and phases[1]["lr"] == pytest.approx(0.002)


def test_phased_schedule_scales_after_the_boundary():
    from kerascnn.weights.finetune import PhasedSchedule

    s = PhasedSchedule(keras.optimizers.schedules.CosineDecay(1.0, 100), boundary=10, ratio=0.1)
    base = keras.optimizers.schedules.CosineDecay(1.0, 100)
    assert float(s(9)) == pytest.approx(float(base(9)))
    assert float(s(10)) == pytest.approx(0.1 * float(base(10)))


def test_weights_h5_of_the_same_architecture_loads_by_position(tmp_path):
    model = create_model("vgg8", num_classes=10, input_shape=(32, 32, 3), width_multiplier=0.25)
    model.save_weights(tmp_path / "w.weights.h5")
    target = create_model("vgg8", num_classes=10, input_shape=(32, 32, 3), width_multiplier=0.25)
    report = transfer.copy_by_name(target, transfer.read_weights_h5(tmp_path / "w.weights.h5", target), "w")
    assert not report.new and all(_same(_weights(target, n), _weights(model, n)) for n in report.loaded)
