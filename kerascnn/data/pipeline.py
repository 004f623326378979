"""tf.data pipelines: seeded validation split, statistics, batching.

Train:  source -> cache (uint8) -> shuffle (seeded, per epoch) -> batch ->
        preprocess (resize, normalise) + one-hot labels -> prefetch.
Val and test: the same without shuffling. Everything after the cache runs on
whole batches, so the per-image Python/graph overhead is paid once per batch.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from kerascnn.data.preprocessing import Preprocessing
from kerascnn.errors import DataError

AUTOTUNE = tf.data.AUTOTUNE
# Decoded uint8 images are kept in memory when they take less than this;
# larger sets are re-read every epoch rather than risk running out of memory.
CACHE_BUDGET_BYTES = 4 << 30


def split_indices(num_train, val_split, limit_train=None, seed=0):
    """Seeded split of the training split into train and validation indices.

    A fraction `val_split` of the training split is held out at random
    (seeded, so the same seed always holds out the same images). With
    `limit_train` (a count, or a fraction of the remaining training images)
    only that many training images are kept, and the validation set shrinks
    in proportion, `n_val = n_train * val_split / (1 - val_split)`, so quick
    runs are quick end to end.

    Returns:
        (train_indices, val_indices), each sorted ascending.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(num_train)
    n_val = int(round(num_train * val_split))
    n_val = min(max(n_val, 1), num_train - 1)
    val_pool, train = order[:n_val], order[n_val:]
    if limit_train is not None:
        if isinstance(limit_train, float):
            n_keep = max(1, int(round(len(train) * limit_train)))
        else:
            n_keep = min(int(limit_train), len(train))
        train = train[:n_keep]
        n_val = max(1, int(round(n_keep * val_split / (1.0 - val_split))))
        val_pool = val_pool[:n_val]
    return np.sort(train), np.sort(val_pool)


def channel_stats(dataset, batch_size=1024):
    """Per-channel mean and standard deviation of uint8 images, 0-255 scale.

    One streaming pass with float64 sums of x and x^2 (so nothing but the
    running sums is held): mean = S1/n, std = sqrt(S2/n - mean^2).
    """
    s1 = np.zeros(3)
    s2 = np.zeros(3)
    count = 0
    for images, _ in dataset.batch(batch_size).as_numpy_iterator():
        pixels = images.reshape(-1, 3).astype(np.float64)
        s1 += pixels.sum(axis=0)
        s2 += np.square(pixels).sum(axis=0)
        count += pixels.shape[0]
    mean = s1 / count
    std = np.sqrt(np.maximum(s2 / count - mean**2, 1e-12))
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


@dataclasses.dataclass
class Datasets:
    """The three batched datasets of a run and what was learned making them."""

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    preprocessing: Preprocessing
    num_train: int
    num_val: int
    num_test: int
    steps_per_epoch: int


def _maybe_cache(ds, count, image_shape):
    if count * int(np.prod(image_shape)) <= CACHE_BUDGET_BYTES:
        return ds.cache()
    return ds


def _batches(ds, batch_size, preprocessing, num_classes, drop_remainder=False):
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE)
    ds = ds.map(
        lambda x, y: (preprocessing(x), tf.one_hot(y, num_classes)),
        num_parallel_calls=AUTOTUNE,
    )
    return ds.prefetch(AUTOTUNE)


def _drain(ds):
    for _ in ds.batch(1024):
        pass


def read_guard(source, fn, *args, **kwargs):
    """Run `fn`, turning a tf.data read failure into a one-line DataError."""
    try:
        return fn(*args, **kwargs)
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError, tf.errors.NotFoundError) as e:
        raise DataError(source.describe_read_error(e)) from None


def make_datasets(source, data_config, global_batch, seed, stats=None):
    """Build train/val/test pipelines for a run.

    Args:
        source: a `DataSource`.
        data_config: `DataConfig` (val_split, limit_train, image_size).
        global_batch: batch size across all replicas.
        seed: seeds the split and the per-epoch shuffle.
        stats: (mean, std) to reuse (a resumed run); None measures them on
            the training images (which also fills the cache).
    """
    info = source.info
    train_idx, val_idx = split_indices(info.num_train, data_config.val_split, data_config.limit_train, seed)
    train_raw = _maybe_cache(source.train_examples(train_idx), len(train_idx), info.image_shape)
    val_raw = _maybe_cache(source.train_examples(val_idx), len(val_idx), info.image_shape)

    test_raw = _maybe_cache(source.test_examples(), info.num_test, info.image_shape)

    if stats is None:
        stats = read_guard(source, channel_stats, train_raw)
    # Read validation and test images now (filling their caches), so that a
    # corrupt file is reported before training starts, not after hours of it.
    read_guard(source, _drain, val_raw)
    read_guard(source, _drain, test_raw)
    image_size = tuple(data_config.image_size or info.image_shape[:2])
    preprocessing = Preprocessing(image_size, *stats)

    n = len(train_idx)
    # Full static batches keep every replica's share equal; a set smaller
    # than one batch still trains on one short batch.
    drop = n >= global_batch
    shuffle_buffer = int(min(n, max(1024, CACHE_BUDGET_BYTES // 8 // int(np.prod(info.image_shape)))))
    train = train_raw.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    train = _batches(train, global_batch, preprocessing, info.num_classes, drop_remainder=drop)
    val = _batches(val_raw, global_batch, preprocessing, info.num_classes)
    test = _batches(test_raw, global_batch, preprocessing, info.num_classes)
    steps = n // global_batch if drop else 1
    return Datasets(train, val, test, preprocessing, n, len(val_idx), info.num_test, steps)
