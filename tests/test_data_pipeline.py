import numpy as np
import pytest
import tensorflow as tf

from kerascnn.config import DataConfig
from kerascnn.data import augment as aug
from kerascnn.data import pipeline
from kerascnn.data.pipeline import make_datasets, split_indices, without_autotuning
from kerascnn.data.statistics import channel_stats
from kerascnn.data.preprocessing import Preprocessing
from kerascnn.data.contract import DataSource, SourceInfo
from kerascnn.data.synthetic import SyntheticSource
from kerascnn.errors import ConfigError


class ArraySource(DataSource):
    def __init__(self, n_train=100, n_test=30, size=8, classes=4):
        rng = np.random.default_rng(1)
        self.x = rng.integers(0, 256, (n_train, size, size, 3), dtype=np.uint8)
        self.y = (np.arange(n_train) % classes).astype(np.int32)
        self.xt = rng.integers(0, 256, (n_test, size, size, 3), dtype=np.uint8)
        self.yt = (np.arange(n_test) % classes).astype(np.int32)
        self.info = SourceInfo("array", tuple("abcd"[:classes]), n_train, n_test, (size, size, 3))

    def train_examples(self, indices):
        return tf.data.Dataset.from_tensor_slices((self.x[indices], self.y[indices]))

    def test_examples(self):
        return tf.data.Dataset.from_tensor_slices((self.xt, self.yt))


def test_split_is_seeded_disjoint_and_complete():
    train, val = split_indices(1000, 0.1, seed=3)
    assert len(val) == 100 and len(train) == 900
    assert not set(train) & set(val) and set(train) | set(val) == set(range(1000))
    again_train, again_val = split_indices(1000, 0.1, seed=3)
    assert np.array_equal(val, again_val)
    assert not np.array_equal(val, split_indices(1000, 0.1, seed=4)[1])


def test_limit_train_as_count_and_fraction_shrinks_validation_in_proportion():
    train, val = split_indices(1000, 0.1, limit_train=90, seed=0)
    assert len(train) == 90 and len(val) == 10
    train, val = split_indices(1000, 0.1, limit_train=0.5, seed=0)
    assert len(train) == 450 and len(val) == 50
    # The limited set is a subset of the unlimited training indices: no leak into validation.
    full_train, full_val = split_indices(1000, 0.1, seed=0)
    assert set(train) <= set(full_train) and set(val) <= set(full_val)


def test_channel_stats_match_numpy():
    source = ArraySource()
    mean, std = channel_stats(source.train_examples(np.arange(100)), batch_size=7)
    pixels = source.x.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(mean, pixels.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(std, pixels.std(axis=0), rtol=1e-9)


def test_preprocessing_normalises_and_resizes_any_input_size():
    prep = Preprocessing((4, 4), (10.0, 20.0, 30.0), (2.0, 4.0, 5.0))
    images = np.full((1, 4, 4, 3), [12, 28, 45], np.uint8)
    np.testing.assert_allclose(prep(images).numpy()[0, 0, 0], [1.0, 2.0, 3.0])
    assert prep(np.zeros((2, 9, 7, 3), np.uint8)).shape == (2, 4, 4, 3)
    dynamic = tf.function(prep, input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    np.testing.assert_allclose(dynamic(images).numpy(), prep(images).numpy())
    assert dynamic(np.zeros((1, 6, 6, 3), np.uint8)).shape == (1, 4, 4, 3)


def test_make_datasets_batches_normalised_images_with_one_hot_labels():
    source = ArraySource()
    data = make_datasets(source, DataConfig(batch_size=16, val_split=0.2, image_size=(12, 12)), 16, seed=0)
    assert (data.num_train, data.num_val, data.num_test) == (80, 20, 30)
    assert data.steps_per_epoch == 5
    x, y = next(iter(data.train))
    assert x.shape == (16, 12, 12, 3) and x.dtype == tf.float32
    assert y.shape == (16, 4) and np.allclose(y.numpy().sum(axis=1), 1)
    # Normalised with the training statistics: zero mean, unit variance (at the
    # native size; upsampling per-pixel noise would smooth the variance away).
    native = make_datasets(source, DataConfig(batch_size=16, val_split=0.2), 16, seed=0)
    all_x = np.concatenate([b[0].numpy() for b in native.train])
    assert abs(all_x.mean()) < 0.1 and abs(all_x.std() - 1) < 0.15
    assert sum(b[0].shape[0] for b in data.test) == 30


def test_every_pipeline_keras_consumes_runs_without_tf_data_autotuning():
    # An autotuned iterator's deletion waits for the tuning thread's next wake-up: a 4-step fit
    # ended idle for up to 2.3 s at the end in half its calls (benchmarks/NOTES.md, 79).
    data = make_datasets(ArraySource(), DataConfig(batch_size=16, val_split=0.2), 16, seed=0)
    for split in (data.train, data.val, data.test):
        options = split.options()
        assert options.autotune.enabled is False
        assert options.experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA
    assert without_autotuning(tf.data.Dataset.range(3).prefetch(tf.data.AUTOTUNE)).options().autotune.enabled is False
    assert tf.data.Dataset.range(3).options().autotune.enabled is None  # TensorFlow's default: on


def test_train_order_is_reshuffled_every_epoch_but_reproducible():
    source = ArraySource()

    def two_epochs(seed):
        data = make_datasets(source, DataConfig(batch_size=10, augment="none"), 10, seed=seed)
        # The first pixel identifies each image; 90 images in 9 batches per epoch.
        return [np.concatenate([b[0].numpy()[:, 0, 0, 0] for b in data.train]) for _ in range(2)]

    first, second = two_epochs(0)
    again_first, again_second = two_epochs(0)
    assert not np.array_equal(first, second)  # a new order every epoch
    assert np.array_equal(first, again_first) and np.array_equal(second, again_second)  # seeded
    assert sorted(first) == sorted(second)  # the same images, each once
    assert not np.array_equal(first, two_epochs(1)[0])


def test_epoch_numbered_stream_gives_a_resumed_run_the_same_epochs():
    """Epoch e's order and augmentation depend on (seed, e) only, not on the epochs before it."""
    source = ArraySource()
    config = DataConfig(batch_size=10, augment="cifar", pca_jitter=True)

    def epochs(first, last):
        data = make_datasets(source, config, 10, seed=0, epochs=last, first_epoch=first)
        batches = [b[0].numpy() for b in data.train]
        assert len(batches) == (last - first) * data.steps_per_epoch  # one stream, no repeats
        return np.split(np.concatenate(batches), last - first)

    uninterrupted = epochs(0, 3)
    resumed = epochs(2, 3)
    np.testing.assert_array_equal(resumed[0], uninterrupted[2])
    assert not np.array_equal(uninterrupted[1], uninterrupted[2])


def test_val_split_zero_holds_out_nothing_and_the_datasets_have_no_validation_set():
    train, val = split_indices(100, 0.0, seed=3)
    assert len(train) == 100 and len(val) == 0
    train, val = split_indices(100, 0.0, limit_train=30, seed=3)
    assert len(train) == 30 and len(val) == 0
    data = make_datasets(SyntheticSource(num_train=64, num_test=16), DataConfig(val_split=0.0), 16, seed=0)
    assert data.val is None and data.num_val == 0 and data.num_train == 64


def test_runs_alike_share_one_compiled_augmentation_and_it_draws_the_same_pixels():
    """Same augmentation, statistics and input size: one XLA-compiled transform per process, pixels unchanged."""
    source = ArraySource()
    config = DataConfig(batch_size=10, augment="cifar", pca_jitter=True, cutout=4)

    def batches(config):
        return np.concatenate([b[0].numpy() for b in make_datasets(source, config, 10, seed=0).train])

    pipeline._COMPILED.clear()
    first = batches(config)
    assert len(pipeline._COMPILED) == 1
    np.testing.assert_array_equal(batches(config), first)  # the shared function
    assert len(pipeline._COMPILED) == 1
    pipeline._COMPILED.clear()
    np.testing.assert_array_equal(batches(config), first)  # compiled anew: the same pixels
    other = batches(DataConfig(batch_size=10, augment="cifar", pca_jitter=True, cutout=2))
    assert len(pipeline._COMPILED) == 2 and not np.array_equal(other, first)


def test_the_compiled_augmentation_is_keyed_by_everything_it_captures():
    augmentation = aug.Augmentation("cifar", (8, 8), pca={"eigenvalues": np.ones(3), "eigenvectors": np.eye(3)})
    preprocessing = Preprocessing((8, 8), (120.0, 110.0, 100.0), (60.0, 60.0, 60.0))
    transform = pipeline.compiled_transform(augmentation, preprocessing, (8, 8))
    same = aug.Augmentation("cifar", (8, 8), pca={"eigenvectors": np.eye(3), "eigenvalues": [1.0, 1.0, 1.0]})
    assert pipeline.compiled_transform(same, Preprocessing((8, 8), [120, 110, 100], [60, 60, 60]), (8, 8)) is transform
    changed = [
        (aug.Augmentation("cifar", (8, 8), pca={"eigenvalues": np.ones(3), "eigenvectors": -np.eye(3)}), preprocessing),
        (aug.Augmentation("cifar", (8, 8), pad_mode="zero", pca=augmentation.pca), preprocessing),
        (augmentation, Preprocessing((8, 8), (120.0, 110.0, 100.5), (60.0, 60.0, 60.0))),
        (augmentation, Preprocessing((8, 8), (120.0, 110.0, 100.0), (60.0, 60.0, 60.0), channel_order="bgr")),
    ]
    for other_augmentation, other_preprocessing in changed:
        assert pipeline.compiled_transform(other_augmentation, other_preprocessing, (8, 8)) is not transform
    assert pipeline.compiled_transform(augmentation, preprocessing, (10, 10)) is not transform


@pytest.mark.parametrize("streamed", [False, True])
def test_alternating_flip_mirrors_half_then_each_image_the_other_way_every_epoch(monkeypatch, streamed):
    """airbench's alternating flip (Jordan 2024, 3.6) through make_datasets, in memory and streamed."""
    if streamed:
        monkeypatch.setattr(pipeline, "CACHE_BUDGET_BYTES", 0)
        tf.random.set_seed(0)  # as `fit --seed 0` does: the streamed shuffle once failed under it
    source = ArraySource()

    def epochs(flip, first=0, last=3):
        # No crop (translate 0) and nothing photometric but the normalisation: each output is
        # its image as it is or mirrored, in an order that does not depend on the flip.
        config = DataConfig(batch_size=10, augment="cifar", translate=0, flip=flip, val_split=0)
        data = make_datasets(source, config, 10, seed=3, epochs=last, first_epoch=first)
        return np.split(np.concatenate([b[0].numpy() for b in data.train]), last - first), data.preprocessing

    (plain, preprocessing), (alternating, _) = epochs("none"), epochs("alternating")
    originals = preprocessing.normalize(tf.constant(source.x, tf.float32)).numpy()
    distance = np.abs(plain[0][:, None] - originals[None]).max(axis=(2, 3, 4))
    assert np.all(distance.min(axis=1) < 1e-4)  # "none" mirrors nothing: every image as it is
    keys = [[img.tobytes() for img in epoch] for epoch in plain]
    flipped = []
    for p, a in zip(plain, alternating):
        mirrored = np.array([np.array_equal(x, y[:, ::-1]) for x, y in zip(a, p)])
        as_is = np.array([np.array_equal(x, y) for x, y in zip(a, p)])
        assert np.all(mirrored ^ as_is)  # every image either way round, none changed otherwise
        flipped.append(mirrored)
    state = [dict(zip(k, f)) for k, f in zip(keys, flipped)]  # image -> mirrored, per epoch
    assert sum(state[0].values()) == 50  # exactly half of the 100 in the first epoch
    assert all(state[1][k] != state[0][k] for k in state[0])  # the other way round in the second
    assert state[2] == state[0]  # and back in the third
    np.testing.assert_array_equal(epochs("alternating", first=1)[0][0], alternating[1])  # a resumed run's epoch 1


def test_a_streamed_image_folder_is_read_in_each_epoch_s_permutation_as_in_memory(tmp_path, monkeypatch):
    """A folder too large for memory is read from its files every epoch. They are listed class by
    class, and a shuffle buffer over that order mixes only neighbours (a few classes a batch on an
    ImageNet-sized folder), so the folder is read in the epoch's own permutation instead: the same
    batches, image for image, as the in-memory path draws."""
    from conftest import make_image_folder
    from kerascnn.data.image_folder import ImageFolderSource

    root = make_image_folder(tmp_path / "pics", classes=tuple("abcdefgh"), per_class=8, test_per_class=1, size=(8, 8))
    source = ImageFolderSource(root)
    assert source.train_reader(np.arange(64)) is not None and DataSource().train_reader(np.arange(4)) is None
    config = DataConfig(batch_size=16, augment="cifar", translate=0, flip="none", val_split=0)

    def epochs(first=0):
        data = make_datasets(source, config, 16, seed=3, epochs=3, first_epoch=first)
        batches = [(x.numpy(), y.numpy()) for x, y in data.train]
        labels = [y.argmax(-1) if y.ndim == 2 else y for _, y in batches]
        return [x for x, _ in batches], labels

    in_memory = epochs()
    monkeypatch.setattr(pipeline, "CACHE_BUDGET_BYTES", 0)
    tf.random.set_seed(0)  # as `fit --seed 0` does
    streamed = epochs()
    assert len(streamed[0]) == len(in_memory[0]) == 12  # 3 epochs of 4 batches
    for got, want in zip(streamed[0], in_memory[0]):
        np.testing.assert_allclose(got, want, atol=1e-6)
    for got, want in zip(streamed[1], in_memory[1]):
        np.testing.assert_array_equal(got, want)
    # Every image once an epoch, and batches of many classes, not the two of the files' order.
    for epoch in range(3):
        assert sorted(np.concatenate(streamed[1][4 * epoch:4 * epoch + 4]).tolist()) == sorted(list(range(8)) * 8)
    assert min(len(set(labels.tolist())) for labels in streamed[1]) >= 4
    # A resumed run's epoch 1 is the same epoch 1.
    np.testing.assert_allclose(epochs(first=1)[0][0], streamed[0][4], atol=1e-6)


def test_alternating_flip_needs_numbered_epochs_and_the_pipeline_s_mask():
    with pytest.raises(ConfigError, match="--flip alternating needs the epochs numbered"):
        make_datasets(ArraySource(), DataConfig(batch_size=10, flip="alternating"), 10, seed=0)
    augmentation = aug.Augmentation("cifar", (8, 8), flip="alternating")
    with pytest.raises(ValueError, match="pass `flips`"):
        augmentation.geometric(np.zeros((2, 8, 8, 3), np.uint8), tf.constant([1, 2], tf.int64))
    with pytest.raises(ConfigError, match="flip must be one of random, alternating, none"):
        DataConfig(flip="sideways")
    assert augmentation.describe() == "cifar (reflect pad 4, crop, alternating flip)"
