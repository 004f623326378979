"""benchmarks/gpu_recipes.py: the parts that need no GPU and no JAX (its device run is in docs/results.md).

The test-time views must be kerascnn.serving.tta's, the data the image
folder's, and a plan must shrink to its deadline; the training itself is
`kerascnn.training.build.build_models`, tested with the rest of `fit`.
"""

import io
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

import gpu_recipes  # noqa: E402

from kerascnn.errors import DataError  # noqa: E402
from kerascnn.serving import tta  # noqa: E402


def test_shifted_views_are_the_serving_test_time_views():
    images = np.random.default_rng(0).normal(size=(3, 6, 5, 3)).astype(np.float32)
    for dy, dx in gpu_recipes.VIEW_SHIFTS:
        np.testing.assert_array_equal(gpu_recipes.shifted(images, dy, dx), tta.shift(tf.constant(images), dy, dx).numpy())


def test_tta_accuracies_combine_the_six_views_as_serving_does():
    rng = np.random.default_rng(1)
    images = rng.normal(size=(40, 4, 4, 3)).astype(np.float32)
    labels = rng.integers(0, 3, 40)
    weights = rng.normal(size=(48, 3)).astype(np.float32)

    def predict(x):  # a fixed linear classifier on the pixels: every view scores differently
        return x.reshape(len(x), -1) @ weights

    got = gpu_recipes.tta_accuracies(predict, images, labels)
    views = [v.numpy() for v in tta.flip_shift_views(tf.constant(images))]
    expected = tta.combine_views([gpu_recipes.softmax(predict(v)) for v in views])
    assert got == tuple(float(np.mean(p.argmax(1) == labels)) for p in expected)
    assert len(set(got)) > 1  # the three figures differ on this data, so the order is checked too


def _jpeg(colour):
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def test_load_cifar_reads_the_tarball_in_class_and_file_order(tmp_path):
    archive = tmp_path / "cifar10-jpeg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split, per_class in (("train", 2), ("test", 1)):
            for label, cls in enumerate(gpu_recipes.CLASSES):
                for i in reversed(range(per_class)):  # written out of order on purpose
                    data = _jpeg((25 * label, 100 * i, 0))
                    info = tarfile.TarInfo(f"cifar10-jpeg/{split}/{cls}/{i:04d}.jpg")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    data = gpu_recipes.load_cifar(archive)
    images, labels = data["train"]
    assert images.shape == (20, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 2))
    assert abs(int(images[1, 0, 0, 1]) - 100) <= 3 and int(images[0, 0, 0, 1]) <= 3  # 0000.jpg before 0001.jpg
    assert data["test"][0].shape == (10, 32, 32, 3)
    assert len(gpu_recipes.load_cifar(archive, limit_per_class=1)["train"][0]) == 10


def test_load_cifar_says_which_split_is_missing(tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "train" / "cat" / "0000.jpg").write_bytes(_jpeg((0, 0, 0)))
    with pytest.raises(DataError, match="no test images"):
        gpu_recipes.load_cifar(tmp_path)


def test_plan_entries_their_epochs_and_their_share_of_the_deadline():
    plan = gpu_recipes.parse_plan(["alexnet_cifar", "vgg16_bn:40", "resnet18:40:150", "vgg16_bn:60:110:cutout=8",
                                   "resnet18::90:lr=0.2:dropout=0.1"])
    assert plan == [("alexnet_cifar", None, None, []), ("vgg16_bn", 40, None, []), ("resnet18", 40, 150.0, []),
                    ("vgg16_bn", 60, 110.0, ["cutout=8"]), ("resnet18", None, 90.0, ["lr=0.2", "dropout=0.1"])]
    # 100 s left after 10 s of final testing, 3 s an epoch with 1 s of testing: 22 epochs, capped at 20.
    assert gpu_recipes.fitting_epochs(20, 110, 3.0, 1.0, 10) == 20
    assert gpu_recipes.fitting_epochs(40, 110, 3.0, 1.0, 10) == 25
    assert gpu_recipes.fitting_epochs(40, 5, 3.0, 1.0, 10) == 0
    assert gpu_recipes.fitting_epochs(40, None, 3.0, 1.0, 10) == 40
    entries = [("a", 10, 100.0, []), ("b", 10, 300.0, [])]
    assert gpu_recipes.share(entries, 100.0, 400) == 100.0  # on time: its own seconds
    assert gpu_recipes.share(entries, 100.0, 200) == 50.0  # late: a quarter of what is left
    assert gpu_recipes.share(entries, 100.0, 800) == 200.0  # early: a quarter of the time saved too
    assert gpu_recipes.share(entries, 100.0, -5) == 0.0


def test_the_build_path_imports_and_builds_on_another_keras_backend_with_tensorflow_blocked():
    """What the GPU machine runs: `build_models` with a recipe's optimizer, no TensorFlow to import.

    Keras on its torch backend here (the GPU image has JAX; this suite's environment has
    PyTorch), TensorFlow made unimportable. The recipe's batch-norm treatment and weight decay
    must be in place: scales frozen, and one update of the optimizer (Keras' torch optimizers
    skip `update_step` unless `kerascnn.training.update_step` puts them back on it) decaying a
    kernel by lr * wd and moving an offset at 64x the rate. (Training on JAX is what the
    script's device run measured; Keras' own torch backend asks for TensorFlow in a forward
    pass, so no forward step is taken here.)
    """
    script = """
import sys
sys.modules["tensorflow"] = None  # any import of TensorFlow now fails
from kerascnn.config import RunConfig
from kerascnn.training.build import build_models
config = RunConfig.from_flags("alexnet_cifar", recipe="fast", schedule="constant", warmup_epochs=0, lr=0.01,
                              momentum=0.0, nesterov=False, model_options={"width_multiplier": 0.125, "fc_units": 16})
network, model, _ = build_models("alexnet_cifar", 10, (32, 32, 3), config.model_options, config.optim, 2, 10)
gammas = [v for v in model.variables if v.name == "gamma"]
assert gammas and not any(g.trainable for g in gammas)
import keras, numpy as np
kernel, beta = network.get_layer("conv1").kernel, network.get_layer("conv1_bn").beta
before = keras.ops.convert_to_numpy(kernel)
model.optimizer.apply([keras.ops.zeros(kernel.shape), keras.ops.ones(beta.shape)], [kernel, beta])
decayed = np.allclose(keras.ops.convert_to_numpy(kernel), before * (1 - 0.01 * config.optim.weight_decay), rtol=1e-6)
offset_step = float(-keras.ops.convert_to_numpy(beta)[0])  # from 0, one step at lr 0.01 x 64 of gradient 1
print(decayed, round(offset_step, 6), config.optim.bn_bias_lr_scale)
"""
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    root = os.path.join(os.path.dirname(__file__), "..")
    done = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    decayed, offset_step, scale = done.stdout.split()[-3:]
    assert decayed == "True" and float(offset_step) == pytest.approx(0.64) and scale == "64.0"


def test_a_plan_entry_resolves_its_overrides_over_the_recipe_and_gets_its_own_label():
    config = gpu_recipes.resolve("vgg16_bn", "fast", 60, 3, ["cutout=8", "label_smoothing=0.1", "dropout=0.2"])
    assert (config.epochs, config.seed, config.recipe) == (60, 3, "fast")
    assert config.data.cutout == 8 and config.optim.label_smoothing == 0.1  # the recipe has 0 and 0.2
    assert config.model_options["dropout"] == 0.2 and config.optim.lr == 0.1  # the rest is the recipe's
    assert config.optim.warmup_epochs == 12  # the recipe's warm-up fraction at the entry's epochs
    assert gpu_recipes.entry_label("vgg16_bn", ["cutout=8"]) == "vgg16_bn+cutout=8"
    assert gpu_recipes.entry_label("vgg16_bn", []) == "vgg16_bn"
    # Each model and batch size once, for PyTorch's timings: an override of the batch adds a row.
    plan = gpu_recipes.parse_plan(["vgg16_bn:10", "vgg16_bn:60:110:cutout=8", "vgg16_bn:5::batch_size=64"])
    assert gpu_recipes.batch_sizes(plan, "fast") == [("vgg16_bn", 128), ("vgg16_bn", 64)]


def test_a_bad_override_in_the_plan_stops_the_script_before_any_training(tmp_path, capsys):
    (tmp_path / "train").mkdir()
    status = gpu_recipes.script_exit_status(
        gpu_recipes.main, "gpu_recipes.py",
        ["--data", str(tmp_path), "--out", str(tmp_path / "out"), "--plan", "vgg16_bn:10::cutout=-3"])
    assert status == 2
    assert "cutout" in capsys.readouterr().err


def test_a_training_set_smaller_than_one_batch_stops_the_script_before_any_training(tmp_path, capsys):
    # Every epoch is whole batches on the GPU (one compiled step shape), so 20 images and the
    # recipe's batch 128 would make zero steps; said in one line, before JAX or PyTorch starts.
    for split, per_class in (("train", 2), ("test", 1)):
        for cls in gpu_recipes.CLASSES:
            folder = tmp_path / "data" / split / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                (folder / f"{i:04d}.jpg").write_bytes(_jpeg((0, 0, 0)))
    environment = dict(os.environ)
    status = gpu_recipes.script_exit_status(
        gpu_recipes.main, "gpu_recipes.py",
        ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--plan", "alexnet_cifar:2"])
    err = capsys.readouterr().err
    assert dict(os.environ) == environment  # KERAS_BACKEND=jax here would reach every later test's children
    assert status == 2
    assert "20 training images are fewer than one batch of 128" in err and "--limit-per-class 13" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing written
