"""tf.data pipelines: seeded validation split, statistics, batching, augmentation.

Train:  source -> cache (uint8) -> shuffle (seeded, per epoch) -> batch ->
        crop/flip (seeded per batch, parallel) -> PCA colour jitter ->
        normalise -> cutout / random erasing -> one-hot labels -> prefetch.
Val and test: cache -> batch -> resize (or the centre crop of the alexnet
and inception presets) -> normalise -> one-hot -> prefetch, never augmented.
Everything after the cache runs on whole batches, so the per-image
Python/graph overhead is paid once per batch (`benchmarks/pipeline.py`).
"""

import collections
import dataclasses
import threading

import numpy as np
import tensorflow as tf

from kerascnn.data import augment as aug
from kerascnn.data.preprocessing import Preprocessing
from kerascnn.data.statistics import pca_of, pixel_moments
from kerascnn.errors import ConfigError, DataError

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
    if val_split > 0:  # a split asked for holds out at least one image and keeps one
        n_val = min(max(n_val, 1), num_train - 1)
    val_pool, train = order[:n_val], order[n_val:]
    if limit_train is not None:
        if isinstance(limit_train, float):
            n_keep = max(1, int(round(len(train) * limit_train)))
        else:
            n_keep = min(int(limit_train), len(train))
        train = train[:n_keep]
        n_val = int(round(n_keep * val_split / (1.0 - val_split)))
        val_pool = val_pool[: max(1, n_val) if val_split > 0 else 0]
    return np.sort(train), np.sort(val_pool)


@dataclasses.dataclass
class Datasets:
    """The three batched datasets of a run and what was learned making them."""

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    preprocessing: Preprocessing
    augmentation: aug.Augmentation
    test_tta: tf.data.Dataset
    num_train: int
    num_val: int
    num_test: int
    steps_per_epoch: int


def plain_graph(fn):
    """`fn` marked for tf.data and tf.function to trace as it is, without AutoGraph.

    The pipeline's functions branch only on Python values fixed when they are
    traced (a preset, a size); where a branch depends on a tensor they call
    `tf.cond` themselves. AutoGraph would rewrite each of them from its source
    all the same, about a second of CPU for every process that builds a run's
    datasets (benchmarks/NOTES.md, 28). Keras traces its train step the same way.
    """
    return tf.autograph.experimental.do_not_convert(fn)


def _maybe_cache(ds, count, image_shape):
    if count * int(np.prod(image_shape)) <= CACHE_BUDGET_BYTES:
        return ds.cache()
    return ds


def _batches(ds, batch_size, preprocessing, num_classes):
    ds = ds.batch(batch_size, num_parallel_calls=AUTOTUNE)
    ds = ds.map(
        plain_graph(lambda x, y: (preprocessing(x), tf.one_hot(y, num_classes))),
        num_parallel_calls=AUTOTUNE,
    )
    return _for_keras(ds.prefetch(AUTOTUNE))


def test_batches(source, preprocessing, batch_size):
    """The test split of `source` as `(normalised images, one-hot labels)` batches, as `fit` tests it.

    For measurements outside a run's own evaluation (`benchmarks/time_to_accuracy.py`
    reads the run's `Preprocessing` from its config.json).
    """
    test_raw = _maybe_cache(source.test_examples(), source.info.num_test, source.info.image_shape)
    return _batches(test_raw, batch_size, preprocessing, source.info.num_classes)


def epoch_keys(seed, epochs=None, first_epoch=0):
    """One int64 key per epoch; every random choice of an epoch derives from its key.

    With `epochs`, the keys are the epoch numbers `first_epoch..epochs-1`:
    epoch e always has the same order and augmentation, whether the run got
    there in one go or was killed and resumed at e (the run's `--seed`
    enters through the stateless ops). Without, each pass over the dataset
    draws a fresh key from `Dataset.random(seed, rerandomize_each_iteration=True)`,
    for callers that iterate the dataset once per epoch.
    """
    if epochs is not None:
        return tf.data.Dataset.range(first_epoch, epochs)
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)


def _batch_seed(seed, key, batch_index):
    """The stateless seed of one batch: fold_in((seed, epoch key), batch index)."""
    base = tf.stack([tf.constant(seed, tf.int64), tf.cast(key, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, batch_index)


def epoch_order(n, seed, key):
    """The epoch's permutation of `range(n)` (int64): stateless, fixed by the run's seed and the epoch key."""
    return tf.random.experimental.stateless_shuffle(
        tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), tf.cast(key, tf.int64)])
    )


def in_memory_batches(images, labels, batch_size, seed, drop_remainder=False, epochs=None, first_epoch=0):
    """Shuffled batches of arrays held in memory: (images, labels, batch seed, image ids, epoch key).

    The image ids are the images' indices in `images`, and the epoch key is
    the epoch's number when `epochs` is given (`epoch_keys`): what the
    alternating flip needs to know which way round each image goes.

    Only the indices are shuffled (a stateless permutation per epoch key,
    see `epoch_keys`); each batch is then one `tf.gather` from the image
    tensor. Per-element dataset work (shuffle buffers of images, then
    `batch`) costs about as much as the augmentation itself on small
    images, so this is what lets the batched pipeline outrun a per-image
    one (`benchmarks/pipeline.py`).
    """
    images = tf.constant(images)
    labels = tf.constant(labels)
    n = int(images.shape[0])

    def one_epoch(key):
        order = epoch_order(n, seed, key)
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=drop_remainder)
        return batches.enumerate().map(plain_graph(lambda b, idx: (idx, _batch_seed(seed, key, b), key)))

    ds = epoch_keys(seed, epochs, first_epoch).flat_map(plain_graph(one_epoch))
    return ds.map(
        plain_graph(lambda idx, s, key: (tf.gather(images, idx), tf.gather(labels, idx), s, idx, key)),
        num_parallel_calls=AUTOTUNE,
    )


def streamed_batches(ds, batch_size, seed, shuffle_buffer, drop_remainder=False, epochs=None, first_epoch=0,
                     reader=None, num_images=None):
    """Shuffled batches of an (image, label) dataset too large to hold in memory.

    With `reader` (`DataSource.train_reader`: order -> dataset) and `num_images`,
    each epoch reads the images in a fresh permutation, the same one
    `in_memory_batches` would draw for that epoch. Without, `ds` is read in
    its fixed order through a shuffle buffer of `shuffle_buffer` images, which
    mixes only neighbours: fine for a source stored shuffled (tensorflow-datasets
    shuffles when it prepares a dataset), not for files listed class by class.
    Either way the order is keyed by the epoch, so epoch e's does not depend on
    how many epochs this process has already run. The elements are those of
    `in_memory_batches`; the image ids are the images' positions in `ds`.
    """
    if reader is not None:
        def one_permuted_epoch(key):
            order = epoch_order(num_images, seed, key)
            numbered = tf.data.Dataset.zip(tf.data.Dataset.from_tensor_slices(order), reader(order))
            batches = numbered.batch(batch_size, drop_remainder=drop_remainder)
            return batches.enumerate().map(
                plain_graph(lambda b, batch: (batch[1][0], batch[1][1], _batch_seed(seed, key, b), batch[0], key))
            )

        return epoch_keys(seed, epochs, first_epoch).flat_map(plain_graph(one_permuted_epoch))

    numbered = ds.enumerate()

    def one_epoch(key):
        # The shuffle's seed is a tensor (it depends on the epoch key), and TensorFlow
        # pairs an op seed with the graph's global seed in `random_seed.get_seed`, whose
        # `seeds == (0, 0)` test turns the tensor into a Python bool and fails whenever
        # the global seed is 0 (`fit`'s default --seed sets it). Without a graph seed the
        # pair is (TensorFlow's default graph seed, this seed): the same for a run and
        # its resumption, and no comparison of the tensor.
        tf.compat.v1.get_default_graph().seed = None
        epoch = numbered.shuffle(shuffle_buffer, seed=tf.cast(seed, tf.int64) * 1_000_003 + tf.cast(key, tf.int64))
        batches = epoch.batch(batch_size, drop_remainder=drop_remainder)
        return batches.enumerate().map(
            plain_graph(lambda b, batch: (batch[1][0], batch[1][1], _batch_seed(seed, key, b), batch[0], key))
        )

    return epoch_keys(seed, epochs, first_epoch).flat_map(plain_graph(one_epoch))


def training_batches(batches, augmentation, preprocessing, num_classes, seed=0, num_images=None):
    """Augment and normalise batches of `in_memory_batches` / `streamed_batches` for training.

    Every random choice of a batch (crops, flips, colour shifts,
    occlusions) derives from its stateless seed, so augmentation differs
    every epoch but is fixed by `--seed` and the epoch, and every map can
    run on several threads (no random state is shared between them).

    The element-wise chain (cast, colour shift, clip, normalise, occlusion)
    and the gathers of the `cifar` crop are compiled with XLA, which fuses
    them into one pass over the batch: about 3x the images per second of
    the same ops run one by one, and PCA jitter then costs next to nothing
    (`benchmarks/pipeline.py`). Resizing presets keep their resize
    uncompiled (crop_and_resize has no XLA kernel).

    With `augmentation.flip == "alternating"` the images to mirror come from
    each image's id and the epoch number (`augment.alternating_flips`, keyed
    by `seed` over the `num_images` training images): the batches must be an
    epoch-numbered stream (`epochs` given to the batching functions).
    """
    transform = compiled_transform(augmentation, preprocessing, tuple(batches.element_spec[0].shape[1:3]))
    alternating = augmentation.flip == "alternating"

    def augment(images, labels, batch_seed, image_ids, epoch):
        geo_seed, photo_seed = tf.unstack(tf.random.experimental.stateless_split(batch_seed, 2))
        flips = aug.alternating_flips(image_ids, epoch, seed, num_images) if alternating else None
        return transform(images, geo_seed, photo_seed, flips), tf.one_hot(labels, num_classes)

    return _for_keras(batches.map(plain_graph(augment), num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE))


# Compiled augmentations of this process, newest last: (key, transform).
_COMPILED = collections.OrderedDict()
_COMPILED_KEEP = 8
_COMPILED_LOCK = threading.Lock()


def _frozen(value):
    """A hashable stand-in for `value`: numbers in arrays, lists or tuples by their exact float64 bytes."""
    if dataclasses.is_dataclass(value):
        fields = dataclasses.fields(value)
        return (type(value).__name__,) + tuple((f.name, _frozen(getattr(value, f.name))) for f in fields)
    if isinstance(value, dict):
        return tuple((k, _frozen(v)) for k, v in sorted(value.items()))
    if isinstance(value, (list, tuple, np.ndarray)):
        try:
            numbers = np.asarray(value)
        except ValueError:  # ragged
            numbers = None
        if numbers is not None and numbers.dtype.kind in "biuf":  # the exact values, whatever holds them
            return ("numbers", numbers.shape, numbers.astype(np.float64).tobytes())
        return tuple(_frozen(v) for v in value)
    return value


def compiled_transform(augmentation, preprocessing, input_size):
    """`transform(images, geo_seed, photo_seed, flips=None)`: one batch augmented and normalised, XLA-compiled.

    XLA compiles a function once per tf.function and input shape, and a tiny
    run spends more on that compile (about 1.3 CPU s on a 2-core host) than
    on augmenting its batches. Runs in one process with the same
    augmentation, normalisation and input size (a study's arms, a search's
    trials, the test suite) therefore share one function, and with it the
    compiled code: the function is a pure map of (images, seeds), so sharing
    it changes no pixel. The last `_COMPILED_KEEP` are kept.
    """
    key = (_frozen(augmentation), _frozen(preprocessing), tuple(input_size))
    with _COMPILED_LOCK:
        if key in _COMPILED:
            _COMPILED.move_to_end(key)
            return _COMPILED[key]
    # Made once per function, outside any traced function.
    jitter = augmentation.pca_layer()

    def photometric(images, photo_seed):
        return augmentation.photometric(images, photo_seed, preprocessing.normalize, jitter)

    # `flips`: the images to mirror (the alternating flip), or None to draw them.
    if augmentation.geometric_is_compilable(input_size):

        @tf.function(jit_compile=True, autograph=False)
        def transform(images, geo_seed, photo_seed, flips=None):
            return photometric(augmentation.geometric(images, geo_seed, flips), photo_seed)

    else:
        compiled = tf.function(photometric, jit_compile=True, autograph=False)

        def transform(images, geo_seed, photo_seed, flips=None):
            return compiled(augmentation.geometric(images, geo_seed, flips), photo_seed)

    with _COMPILED_LOCK:
        _COMPILED[key] = transform
        while len(_COMPILED) > _COMPILED_KEEP:
            _COMPILED.popitem(last=False)
    return transform


def any_batch_spec(spec, axis=0):
    """`spec` (a batched dataset's element spec) with its batch axis unknown.

    As the `input_signature` of a forward pass over a test set: one trace
    serves the full batches and the short last one, which a function traced
    with concrete shapes would trace again (the whole model a second time:
    seconds for GoogLeNet).
    """
    shape = spec.shape.as_list()
    shape[axis] = None
    return tf.TensorSpec(shape, spec.dtype)


def _for_keras(ds):
    """`ds` as Keras gets it: split by batch between workers (AutoShardPolicy.DATA), autotuning off.

    The data come from memory or from one stream, not from a set of files
    that workers could divide, so tf.distribute's default (try files, then
    fall back to data, with a warning) would end up splitting by batch anyway.
    Autotuning: `without_autotuning`.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return without_autotuning(ds.with_options(options))


def without_autotuning(ds):
    """`ds` with tf.data's autotuning off, so that letting go of an iterator costs nothing.

    Autotuning runs a thread per iterator that wakes after 10, 20, 40, ...
    ms (the period doubling), and deleting the iterator often waits for its
    next wake-up with nothing to do: a `fit`, `evaluate` or `predict` call
    returned only at the next of 10, 30, 70, ..., 2,550, 5,110 ms after it
    began. A 4-step vgg16_bn `fit` on a pipeline of this module's shape took
    5.14 s in half of 8 calls (idle for the last 1.4-2.3 s) and 2.7-3.3 s in
    the rest; timed as whole `fit` calls, half of 10 fresh alexnet_cifar
    processes trained at 200 images/s with their CPUs a third idle, the
    others at 273-342 (benchmarks/NOTES.md, 79 and 80). Without it, every
    `AUTOTUNE` parallelism is fixed at the number of cores (at most 16) and
    the prefetch buffers at their starting size; the batched pipeline still
    outruns the model by three orders of magnitude (`benchmarks/pipeline.py`).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def _to_arrays(ds):
    images, labels = zip(*ds.batch(1024).as_numpy_iterator())
    return np.concatenate(images), np.concatenate(labels)


def ten_crop_batches(ds, batch_size, augmentation, preprocessing, num_classes):
    """Test batches of the ten AlexNet patches: ([10, B, h, w, 3] normalised, one-hot [B, C])."""
    ds = ds.batch(batch_size, num_parallel_calls=AUTOTUNE)

    def views(images, labels):
        crops = aug.ten_crops(augmentation.tta_canvas(images), augmentation.image_size)
        return preprocessing.normalize(crops), tf.one_hot(labels, num_classes)

    return without_autotuning(ds.map(plain_graph(views), num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE))


def resolve_augmentation(data_config, image_size, pca=None):
    """The `Augmentation` a DataConfig asks for (preset chosen by size when unset)."""
    return aug.Augmentation(
        preset=data_config.augment or aug.default_preset(image_size),
        image_size=tuple(image_size),
        pad_mode=data_config.pad_mode,
        translate=data_config.translate,
        flip=data_config.flip,
        pca=pca if wants_pca(data_config, image_size) else None,
        pca_sigma=data_config.pca_sigma,
        pca_scale=data_config.pca_scale,
        cutout=data_config.cutout,
        random_erasing=data_config.random_erasing,
    )


def wants_pca(data_config, image_size):
    """PCA jitter is on when asked for, or by default with the alexnet preset."""
    preset = data_config.augment or aug.default_preset(image_size)
    return data_config.pca_jitter if data_config.pca_jitter is not None else preset == "alexnet"


def _drain(ds):
    for _ in ds.batch(1024):
        pass


_READ_ERRORS = (tf.errors.InvalidArgumentError, tf.errors.DataLossError, tf.errors.NotFoundError)


def is_read_failure(error):
    """Whether `error` is the input pipeline failing to produce a batch (a file, a record, a label).

    Undecodable images and bad labels (InvalidArgumentError), truncated
    records (DataLossError) and vanished files (NotFoundError) reach the
    caller through the op that takes the next element of a tf.data
    iterator, and the message names it: `IteratorGetNext` (eager
    iteration, and `model.fit`'s step), `IteratorGetNextAsOptional` and
    `MultiDeviceIteratorGetNextFromShard` (a distributed dataset). The same
    error types raised by the model's own ops (a shape mismatch in a step)
    are not about the data, and must not be reported as if they were.
    """
    return isinstance(error, _READ_ERRORS) and "IteratorGetNext" in str(error)


def read_guard(source, fn, *args, **kwargs):
    """Run `fn`, turning a tf.data read failure (`is_read_failure`) into a one-line DataError.

    Any other error propagates unchanged, with its traceback.
    """
    try:
        return fn(*args, **kwargs)
    except _READ_ERRORS as e:
        if not is_read_failure(e):
            raise
        raise DataError(source.describe_read_error(e)) from None


def make_datasets(source, data_config, global_batch, seed, stats=None, pca=None, epochs=None, first_epoch=0):
    """Build train/val/test pipelines for a run.

    Args:
        source: a `DataSource`.
        data_config: `DataConfig` (split, image size, augmentation).
        global_batch: batch size across all replicas.
        seed: seeds the split, the per-epoch shuffle and the augmentation.
        stats: (mean, std) to reuse (a resumed run); None measures them on
            the training images (which also fills the cache).
        pca: `fit_pca` result to reuse (a resumed run); None measures it
            on the training images, in the same pass as `stats`, when PCA
            jitter is on.
        epochs, first_epoch: with `epochs`, `train` is one stream of the
            epochs `first_epoch..epochs-1` (train it with
            `steps_per_epoch`), each epoch's order and augmentation fixed
            by the seed and its number, so a resumed run sees what an
            uninterrupted one would. Without, every pass over `train` is a
            new, seeded epoch.
    """
    info = source.info
    if data_config.flip == "alternating" and epochs is None:
        # Without epoch numbers (a search's trials draw every pass afresh) there is no "epoch before".
        raise ConfigError("--flip alternating needs the epochs numbered, as fit numbers them; "
                          "use --flip random here")
    train_idx, val_idx = split_indices(info.num_train, data_config.val_split, data_config.limit_train, seed)
    n = len(train_idx)
    in_memory = n * int(np.prod(info.image_shape)) <= CACHE_BUDGET_BYTES
    if in_memory:
        train_raw = read_guard(source, _to_arrays, source.train_examples(train_idx))
    else:
        train_raw = source.train_examples(train_idx)
    # --val-split 0: no validation set; the run keeps its last epoch's model.
    val_raw = _maybe_cache(source.train_examples(val_idx), len(val_idx), info.image_shape) if len(val_idx) else None

    test_raw = _maybe_cache(source.test_examples(), info.num_test, info.image_shape)

    image_size = tuple(data_config.image_size or info.image_shape[:2])
    need_pca = wants_pca(data_config, image_size) and pca is None
    if stats is None or need_pca:
        # One pass over the training images gives both (and fills the cache).
        moments = read_guard(source, pixel_moments, train_raw[0] if in_memory else train_raw)
        if stats is None:
            stats = (tuple(float(m) for m in moments.mean), tuple(float(s) for s in moments.std))
        if need_pca:
            pca = pca_of(moments)
    # Read validation and test images now (filling their caches), so that a
    # corrupt file is reported before training starts, not after hours of it.
    if val_raw is not None:
        read_guard(source, _drain, val_raw)
    read_guard(source, _drain, test_raw)
    augmentation = resolve_augmentation(data_config, image_size, pca)
    preprocessing = Preprocessing(image_size, *stats, resize_to=aug.eval_resize(augmentation.preset, image_size))

    # Full static batches keep every replica's share equal; a set smaller
    # than one batch still trains on one short batch.
    drop = n >= global_batch
    if in_memory:
        batches = in_memory_batches(*train_raw, global_batch, seed, drop, epochs, first_epoch)
    else:
        shuffle_buffer = int(min(n, max(1024, CACHE_BUDGET_BYTES // 8 // int(np.prod(info.image_shape)))))
        batches = streamed_batches(train_raw, global_batch, seed, shuffle_buffer, drop, epochs, first_epoch,
                                   reader=source.train_reader(train_idx), num_images=n)
    train = training_batches(batches, augmentation, preprocessing, info.num_classes, seed, n)
    steps = n // global_batch if drop else 1
    # flat_map hides the length; state it, so Keras knows an epoch's steps
    # up front instead of finding out by running dry (with a warning).
    epochs_in_stream = 1 if epochs is None else epochs - first_epoch
    train = train.apply(tf.data.experimental.assert_cardinality(steps * epochs_in_stream))
    val = None if val_raw is None else _batches(val_raw, global_batch, preprocessing, info.num_classes)
    test = _batches(test_raw, global_batch, preprocessing, info.num_classes)
    test_tta = None
    if data_config.tta:
        test_tta = ten_crop_batches(test_raw, max(1, global_batch // 10), augmentation, preprocessing, info.num_classes)
    return Datasets(
        train, val, test, preprocessing, augmentation, test_tta, n, len(val_idx), info.num_test, steps
    )
