"""Batched augmentation ops and the training pipeline that applies them."""

import numpy as np
import pytest
import tensorflow as tf

from kerascnn.config import DataConfig
from kerascnn.errors import ConfigError
from kerascnn.data import augment as aug
from kerascnn.data.pipeline import make_datasets, resolve_augmentation
from test_data_pipeline import ArraySource

SEED = tf.constant([3, 4], tf.int64)


def _batch(n=64, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype(np.float32)


def test_cifar_crop_is_a_window_of_the_padded_image_at_every_offset():
    x = _batch(n=256, size=12)
    padded = aug.pad(x, 4).numpy()
    crops = aug.random_crop(padded, (12, 12), SEED).numpy()
    offsets = set()
    for i in range(len(x)):
        hits = [
            (dy, dx)
            for dy in range(9)
            for dx in range(9)
            if np.array_equal(padded[i, dy : dy + 12, dx : dx + 12], crops[i])
        ]
        assert hits, f"crop {i} is not a window of its padded image"
        offsets.add(hits[0])
    assert len(offsets) > 60  # of the 81 possible offsets, nearly all are drawn


@pytest.mark.parametrize("mode", ["reflect", "zero"])
def test_fused_pad_crop_flip_equals_padding_then_cropping(mode):
    x = _batch(n=300, size=10).astype(np.uint8)
    padded = aug.pad(x.astype(np.float32), 4, mode).numpy()
    out = aug.random_pad_crop_flip(x, 4, SEED, mode).numpy().astype(np.float32)
    assert out.dtype == np.float32 and out.shape == x.shape
    offsets, flips = set(), 0
    for i in range(len(x)):
        hits = [
            (dy, dx, flip)
            for dy in range(9)
            for dx in range(9)
            for flip in (False, True)
            if np.array_equal(padded[i, dy : dy + 10, dx : dx + 10][:, :: -1 if flip else 1], out[i])
        ]
        assert hits, f"image {i} is not a (mirrored) window of its padded image"
        offsets.add(hits[0][:2])
        flips += hits[0][2]
    assert len(offsets) > 60 and 0.4 < flips / len(x) < 0.6


@pytest.mark.parametrize("translate", [0, 2])
def test_translate_bounds_the_cifar_shift_and_zero_leaves_only_the_flip(translate):
    # A ramp image: pixel (r, c) holds r * 100 + c, so the source of every
    # output pixel is readable and the shift of each image can be recovered.
    size = 10
    ramp = (np.arange(size)[:, None] * 100 + np.arange(size)[None, :]).astype(np.float32)
    x = np.repeat(ramp[None, :, :, None], 400, axis=0)
    augmentation = aug.Augmentation("cifar", (size, size), translate=translate)
    out = augmentation.geometric(x, SEED).numpy()[..., 0]
    padded = aug.pad(x, translate).numpy()[..., 0]
    side = 2 * translate + 1
    windows, flips = set(), 0
    for image in out:
        hits = [
            (dy, dx, flip)
            for dy in range(side)
            for dx in range(side)
            for flip in (False, True)
            if np.array_equal(padded[0, dy : dy + size, dx : dx + size][:, :: -1 if flip else 1], image)
        ]
        assert hits, "an output is not a (mirrored) window of the image padded by `translate`"
        windows.add(hits[0][:2])
        flips += hits[0][2]
    assert len(windows) == side * side  # every shift from -translate to +translate is drawn
    assert 0.4 < flips / len(out) < 0.6
    assert augmentation.describe() == ("cifar (flip)" if translate == 0 else "cifar (reflect pad 2, crop, flip)")


def test_translate_flows_from_the_run_settings_and_is_checked_against_the_image_size():
    assert resolve_augmentation(DataConfig(translate=2), (32, 32)).translate == 2
    assert resolve_augmentation(DataConfig(), (32, 32)).translate == aug.CIFAR_PAD  # the default is unchanged
    with pytest.raises(ConfigError, match="a smaller --translate"):
        aug.Augmentation("cifar", (8, 8), translate=8)
    aug.Augmentation("cifar", (8, 8), translate=8, pad_mode="zero")  # zero padding has no such limit
    with pytest.raises(ConfigError, match="translate must be an integer >= 0"):
        DataConfig(translate=-1)


def test_reflect_and_zero_padding():
    x = _batch(n=2, size=6)
    reflect = aug.pad(x, 2, "reflect").numpy()
    zero = aug.pad(x, 2, "zero").numpy()
    np.testing.assert_array_equal(reflect[:, 0, 2:-2], x[:, 2])  # row -2 mirrors row 2
    assert zero[:, :2].max() == 0 and np.array_equal(zero[:, 2:-2, 2:-2], x)


def test_flip_mirrors_about_half_the_images():
    x = _batch(n=400, size=4)
    out = aug.random_flip(x, SEED).numpy()
    flipped = np.array([np.array_equal(o, i[:, ::-1]) for o, i in zip(out, x)])
    same = np.array([np.array_equal(o, i) for o, i in zip(out, x)])
    assert np.all(flipped | same)
    assert 0.4 < flipped.mean() < 0.6


def test_random_resized_crop_with_full_area_spans_the_whole_image():
    ramp = np.tile(np.arange(16, dtype=np.float32)[None, None, :, None], (4, 16, 1, 3))
    out = aug.random_resized_crop(ramp, (8, 8), SEED, scale=(1.0, 1.0), ratio=(1.0, 1.0)).numpy()
    np.testing.assert_allclose(out[:, :, 0], 0.0, atol=1e-4)  # first and last columns sampled
    np.testing.assert_allclose(out[:, :, -1], 15.0, atol=1e-4)
    np.testing.assert_allclose(np.diff(out[0, 0, :, 0]), 15 / 7, atol=1e-4)  # evenly spaced


def test_random_resized_crop_draws_varied_boxes():
    # A horizontal ramp: the mean column value of a crop tells where it was cut.
    ramp = np.tile(np.arange(64, dtype=np.float32)[None, None, :, None], (256, 64, 1, 3))
    out = aug.random_resized_crop(ramp, (8, 8), SEED).numpy()
    spans = out[:, 0, -1, 0] - out[:, 0, 0, 0]
    assert out.shape == (256, 8, 8, 3)
    assert spans.min() < 20 and spans.max() > 50  # small and large crops both occur
    assert out.min() >= 0 and out.max() <= 63


def test_ten_crops_are_corners_centre_and_mirrors():
    x = _batch(n=2, size=10)
    crops = aug.ten_crops(x, (8, 8)).numpy()
    assert crops.shape == (10, 2, 8, 8, 3)
    expected = [x[:, :8, :8], x[:, :8, 2:], x[:, 2:, :8], x[:, 2:, 2:], x[:, 1:9, 1:9]]
    for k, e in enumerate(expected):
        np.testing.assert_array_equal(crops[k], e)
        np.testing.assert_array_equal(crops[k + 5], e[:, :, ::-1])


def test_cutout_zeroes_one_square_clipped_at_the_border():
    out = aug.cutout(np.ones((200, 16, 16, 3), np.float32), 6, SEED).numpy()
    zeros = (out[..., 0] == 0).sum(axis=(1, 2))
    assert zeros.max() == 36 and zeros.min() >= 9  # whole squares, and clipped ones at corners
    assert np.all((out == 0).all(axis=-1) | (out == 1).all(axis=-1))  # all channels together


def test_random_erasing_probability():
    x = np.ones((400, 16, 16, 3), np.float32)
    np.testing.assert_array_equal(aug.random_erasing(x, 0.0, SEED).numpy(), x)
    out = aug.random_erasing(x, 0.5, SEED).numpy()
    erased = (out != 1).any(axis=(1, 2, 3))
    assert 0.4 < erased.mean() < 0.6
    fraction = (out[erased] != 1).mean(axis=(1, 2, 3))
    assert fraction.min() > 0.01 and fraction.max() < 0.45  # area 2%-40% of the image


def test_default_preset_depends_on_input_size():
    small = resolve_augmentation(DataConfig(), (32, 32), pca={"eigenvalues": [1, 1, 1], "eigenvectors": np.eye(3)})
    assert small.preset == "cifar" and small.pca is None
    large = resolve_augmentation(DataConfig(), (224, 224), pca={"eigenvalues": [1, 1, 1], "eigenvectors": np.eye(3)})
    assert large.preset == "alexnet" and large.pca is not None
    assert aug.canvas_size((224, 224)) == (256, 256)
    assert resolve_augmentation(DataConfig(augment="alexnet", pca_jitter=False), (224, 224)).pca is None


def _epoch(ds):
    return np.concatenate([b[0].numpy() for b in ds])


def test_train_is_augmented_per_epoch_and_seeded_while_val_and_test_never_are():
    source = ArraySource(size=8)
    config = DataConfig(batch_size=10, augment="cifar", pca_jitter=True, cutout=2)
    data = make_datasets(source, config, 10, seed=0)
    first, second = _epoch(data.train), _epoch(data.train)
    assert not np.array_equal(np.sort(first, axis=0), np.sort(second, axis=0))
    again = make_datasets(source, config, 10, seed=0)
    np.testing.assert_array_equal(_epoch(again.train), first)
    # Validation and test: exactly the preprocessing of the raw images, every time.
    plain = make_datasets(source, DataConfig(batch_size=10, augment="none"), 10, seed=0)
    np.testing.assert_allclose(_epoch(data.val), _epoch(plain.val), rtol=1e-6)
    np.testing.assert_allclose(_epoch(data.test), _epoch(plain.test), rtol=1e-6)
    expected_test = plain.preprocessing(source.xt).numpy()
    np.testing.assert_allclose(_epoch(data.test), expected_test, rtol=1e-5, atol=1e-5)
    # The PCA was measured on the training split and stored on the augmentation.
    assert len(data.augmentation.pca["eigenvalues"]) == 3


def test_alexnet_preset_evaluates_the_centre_crop_and_offers_ten_patches():
    source = ArraySource(size=8)
    data = make_datasets(source, DataConfig(batch_size=20, augment="alexnet", image_size=(14, 14), tta=True), 20, 0)
    assert data.preprocessing.resize_to == (16, 16)
    x, _ = next(iter(data.train))
    assert x.shape == (20, 14, 14, 3)
    views, labels = next(iter(data.test_tta))
    assert views.shape == (10, 2, 14, 14, 3) and labels.shape == (2, 4)
    # The centre patch is the evaluation view.
    test_x, _ = next(iter(data.test))
    np.testing.assert_allclose(views[4].numpy(), test_x[:2].numpy(), atol=1e-5)


@pytest.mark.parametrize("preset", aug.PRESETS)
def test_every_preset_gives_model_sized_batches(preset):
    source = ArraySource(size=8)
    data = make_datasets(source, DataConfig(batch_size=10, augment=preset, random_erasing=0.5), 10, 0)
    x, y = next(iter(data.train))
    assert x.shape == (10, 8, 8, 3) and x.dtype == tf.float32 and y.shape == (10, 4)
    assert np.all(np.isfinite(x.numpy()))
