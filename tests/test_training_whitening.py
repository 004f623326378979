"""--whiten: the first convolution as a frozen patch-whitening transform (kerascnn.training.whitening)."""

import json

import keras
import numpy as np
import pytest

from battery import refuse
from kerascnn.config import RunConfig
from kerascnn.errors import ConfigError
from kerascnn.storage import rundir
from kerascnn.training import whitening
from kerascnn.training.fit import fit
from kerascnn.training.weight_decay import factors_of
from interrupt import StopAfter


def correlated_images(n=64, size=12, seed=0):
    """Random images whose neighbouring pixels and channels are correlated, as in natural images."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(n, size + 2, size + 2, 3))
    smooth = sum(noise[:, i : i + size, j : j + size] for i in range(3) for j in range(3)) / 3.0
    mix = np.array([[1.0, 0.6, 0.3], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    return (smooth @ mix + 0.3 * rng.normal(size=(n, size, size, 3))).astype(np.float32)


def test_the_whitened_patches_have_identity_covariance_and_the_rest_is_kept():
    images = correlated_images()
    layer = keras.layers.Conv2D(64, 3, padding="valid", bias_initializer="ones")
    layer.build((None, 12, 12, 3))
    before = layer.kernel.numpy().copy()
    done = whitening.whiten_layer(layer, [images[:40], images[40:]])  # two batches: the sums accumulate
    d = 27
    assert done["filters"] == 2 * d and done["patches"] == 64 * 10 * 10
    # The eigenvalues span a wide range (the patches are far from white) and stay well above eps.
    top, bottom = done["eigenvalues"]
    assert top / bottom > 50 and bottom > 100 * whitening.EPS
    responses = layer(images).numpy().reshape(-1, 64).astype(np.float64)
    covariance = np.cov(responses[:, :d], rowvar=False, bias=True)
    np.testing.assert_allclose(covariance, np.eye(d), atol=0.02)
    kernel = layer.kernel.numpy()
    np.testing.assert_array_equal(kernel[..., d : 2 * d], -kernel[..., :d])  # the negatives, for the ReLU
    np.testing.assert_array_equal(kernel[..., 2 * d :], before[..., 2 * d :])  # 10 random filters kept
    np.testing.assert_array_equal(layer.bias.numpy(), 0.0)
    # The same filters from the formula: W^T Sigma W = diag(lambda / (lambda + eps)).
    _, sigma, _ = whitening.patch_covariance([images], (3, 3))
    w, eigenvalues = whitening.whitening_filters(sigma)
    np.testing.assert_allclose(w[:, :d].T @ sigma @ w[:, :d], np.diag(eigenvalues / (eigenvalues + whitening.EPS)),
                               atol=1e-9)


def test_first_layers_whitening_cannot_fill_are_refused_in_one_line():
    too_few = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(16, 3, name="conv1")], name="narrow")
    with pytest.raises(ConfigError, match=r"needs 54 filters in conv1 of narrow .* it has 16"):
        whitening.Whitening().apply(too_few)
    dense_first = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Dense(64, name="fc")], name="mlp")
    with pytest.raises(ConfigError, match=r"first layer of mlp is fc \(Dense\), not a convolution"):
        whitening.Whitening().apply(dense_first)
    gray = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(64, 3, name="conv1")], name="gray")
    with pytest.raises(ConfigError, match="over the 3 colour channels; conv1 of gray takes 1 channels"):
        whitening.Whitening().apply(gray)
    with pytest.raises(ConfigError, match="does not combine with --weights or --init-from"):
        RunConfig.from_flags("vgg8", whiten=True, weights="imagenet")
    with pytest.raises(ConfigError, match="whiten must be true or false"):
        RunConfig.from_flags("vgg8", whiten=1)


def test_the_cli_refuses_whiten_on_a_narrow_first_layer_before_writing(tmp_path):
    # resnet20's first convolution has 16 filters; 3x3x3 patches need 54.
    stderr = refuse(
        ["fit", "resnet20", "--whiten", "--dataset", "synthetic", "--limit-train", "32", "--epochs", "1"], tmp_path
    )
    assert "--whiten needs 54 filters in conv1_conv of resnet20" in stderr


def test_fit_whitens_freezes_records_and_resumes(tmp_path):
    """A new run whitens conv1 and never trains it; a resumed run restores it, frozen again, and finishes."""
    kernels, penalties = [], []

    class Watch(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            layer = self.model.get_layer("block1_conv1")
            kernels.append(layer.kernel.numpy().copy())
            # Not trained (no optimizer slot, no update), so not weight-decayed either: the decay names every
            # kernel (5 conv + 3 dense), but only the 7 trainable ones are updated and so decayed.
            assert not any(v is layer.kernel for v in self.model.trainable_variables)
            decayed = set(factors_of(self.model.optimizer))
            penalties.append((len(decayed), len(decayed & {v.path for v in self.model.trainable_variables})))

        def on_epoch_end(self, epoch, logs=None):
            kernels.append(self.model.get_layer("block1_conv1").kernel.numpy().copy())

    config = RunConfig.from_flags(
        "vgg8", dataset="synthetic", limit_train=64, val_split=0.25, batch_size=32, epochs=2, schedule="constant",
        lr=0.05, whiten=True, run_dir=str(tmp_path / "run"), precision="float32", image_size=(16, 16),
        model_options={"width_multiplier": 0.875},
    )
    lines = []
    with pytest.raises(KeyboardInterrupt):
        fit(config, log=lines.append, verbose=0, extra_callbacks=[Watch(), StopAfter(0)])
    assert any(line.startswith("--whiten: block1_conv1's first 54 of 56 filters") for line in lines), lines
    run = tmp_path / "run"
    assert json.loads((run / rundir.CONFIG).read_text())["whiten"] is True
    first = kernels[0]
    # The whitening is in place when training starts: filters and their negatives.
    np.testing.assert_array_equal(first[..., 27:54], -first[..., :27])
    np.testing.assert_array_equal(kernels[1], first)  # a trained epoch left it as it was
    lines.clear()
    fit(resume_dir=run, log=lines.append, verbose=0, extra_callbacks=[Watch()])
    assert any("stays frozen" in line for line in lines), lines
    np.testing.assert_array_equal(kernels[2], first)  # restored from the backup, not recomputed
    np.testing.assert_array_equal(kernels[3], first)
    assert (run / rundir.METRICS).exists()
    assert penalties == [(8, 7), (8, 7)]


def test_the_whitening_bias_trains_for_its_epochs_then_stays_through_a_resume(tmp_path):
    """--whiten-bias-epochs 1 (airbench trains it 3): the kernel never moves, the bias moves in epoch 1 only."""
    weights = []

    class Watch(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.on_epoch_end(None)

        def on_epoch_end(self, epoch, logs=None):
            layer = self.model.get_layer("whiten")
            weights.append((layer.kernel.numpy().copy(), layer.bias.numpy().copy()))

    config = RunConfig.from_flags(
        "airbench94", dataset="synthetic", limit_train=64, val_split=0.25, batch_size=16, epochs=3,
        schedule="constant", lr=0.05, whiten=True, whiten_bias_epochs=1, run_dir=str(tmp_path / "run"),
        precision="float32", image_size=(16, 16), model_options={"widths": (8, 16, 16)},
    )
    lines = []
    with pytest.raises(KeyboardInterrupt):
        fit(config, log=lines.append, verbose=0, extra_callbacks=[Watch(), StopAfter(1)])
    assert any("but for its bias, trained for the first 1 epochs" in line for line in lines), lines
    fit(resume_dir=tmp_path / "run", log=lines.append, verbose=0, extra_callbacks=[Watch()])
    (kernel0, bias0), (_, bias1), (_, bias2) = weights[0], weights[1], weights[2]
    assert np.abs(bias0).max() == 0 and np.abs(bias1).min() > 0  # trained in epoch 1 (every channel)
    np.testing.assert_array_equal(bias2, bias1)  # not in epoch 2, no momentum tail
    # The resumed run: restored, and still frozen in epoch 3.
    np.testing.assert_array_equal(weights[3][1], bias1)
    np.testing.assert_array_equal(weights[4][1], bias1)
    for kernel, _ in weights:
        np.testing.assert_array_equal(kernel, kernel0)
    with pytest.raises(ConfigError, match="needs --whiten"):
        RunConfig.from_flags("airbench94", whiten_bias_epochs=3)
    no_bias = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(54, 3, use_bias=False, name="c")], name="nb")
    with pytest.raises(ConfigError, match="trains the bias of c of nb, which has none"):
        whitening.Whitening(bias_epochs=2).apply(no_bias)


def test_time_to_accuracy_and_the_ablation_reach_whiten():
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import ablation
    import time_to_accuracy

    settings, options = time_to_accuracy.overrides(ablation.VARIANTS["with_whitening"][1])
    assert settings == {"whiten": True} and options == {}
    assert RunConfig.from_flags("alexnet_cifar", recipe="fast", **settings).whiten is True
    from kerascnn.recipes import fast

    assert "patch-whitening" in fast(10, {"whiten": True}).summary  # should a recipe ever set it
