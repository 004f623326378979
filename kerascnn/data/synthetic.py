"""A generated, learnable image set for smoke runs and tests.

Each class has a fixed smooth colour pattern: a 4x4 grid of random RGB
values in [32, 224] upsampled bilinearly to the full image size. An example
is its class pattern plus per-pixel Gaussian noise (standard deviation 24)
and a per-example brightness shift (uniform in [-40, 40]), rounded and
clipped to uint8. Classes are balanced (label = position modulo
`num_classes`, then shuffled). A small CNN learns it well above chance in
one short epoch; raw-pixel nearest-class-mean is nearly always right.

Everything is drawn from `numpy.random.Generator`s seeded only by `seed`,
so the arrays are the same on every call and on every machine, whatever
global seed Python, NumPy, TensorFlow or Keras were given. The training
set, the test set and the class patterns each have their own stream, so
changing `num_test` does not change the training images. The default
test set is 500 images (50 a class): enough to tell learning from chance in
a smoke run, and a tenth of the training set, so that testing a smoke run
costs less than training it.
"""

import numpy as np

from kerascnn.data.contract import ArraySource, SourceInfo
from kerascnn.errors import ConfigError

_GRID = 4  # pattern resolution: coarse enough to be smooth, fine enough to differ
_NOISE_STD = 24.0
_MAX_BRIGHTNESS_SHIFT = 40.0


def _axis_weights(n_out, n_in):
    """Source indices and weights for 1-D linear interpolation (half-pixel centres)."""
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (pos - lo).astype(np.float32)


def _upsample(grids, height, width):
    """Bilinear upsampling of `(K, h, w, C)` grids to `(K, height, width, C)`."""
    lo, hi, w = _axis_weights(height, grids.shape[1])
    w = w[None, :, None, None]
    rows = grids[:, lo] * (1 - w) + grids[:, hi] * w
    lo, hi, w = _axis_weights(width, grids.shape[2])
    w = w[None, None, :, None]
    return rows[:, :, lo] * (1 - w) + rows[:, :, hi] * w


def _positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(
            f"SyntheticSource: {name} must be an integer >= {minimum}. Received: {name}={value!r}"
        )
    return int(value)


class SyntheticSource(ArraySource):
    """Generated class patterns plus noise; see the module docstring for the recipe.

    Args:
        num_train: number of training examples.
        num_test: number of test examples.
        num_classes: number of classes (labels `0..num_classes-1`, named
            `class_0`, `class_1`, ...).
        image_shape: `(height, width, 3)`.
        seed: the only source of randomness.
    """

    def __init__(
        self, num_train=5000, num_test=500, num_classes=10, image_shape=(32, 32, 3), seed=0
    ):
        num_train = _positive_int("num_train", num_train)
        num_test = _positive_int("num_test", num_test)
        num_classes = _positive_int("num_classes", num_classes, minimum=2)
        image_shape = tuple(image_shape)
        if len(image_shape) != 3 or image_shape[2] != 3 or min(image_shape) < 1:
            raise ConfigError(
                "SyntheticSource: image_shape must be (height, width, 3). "
                f"Received: image_shape={image_shape!r}"
            )
        height, width, _ = (int(d) for d in image_shape)

        (self._train_images, self._train_labels, self._test_images, self._test_labels) = _drawn(
            num_train, num_test, num_classes, height, width, int(seed)
        )
        self.info = SourceInfo(
            name="synthetic",
            class_names=tuple(f"class_{i}" for i in range(num_classes)),
            num_train=num_train,
            num_test=num_test,
            image_shape=(height, width, 3),
        )


# The last few sets drawn, read-only: the arrays depend on the arguments alone, and a
# process that opens the same set again (every run of a study, `evaluate` after `fit`,
# the tests) would otherwise spend half a second drawing the default 5,500 images anew.
_CACHE = {}
_CACHE_SIZE = 4
_CACHE_MAX_BYTES = 64 * 2**20  # a set larger than this is drawn each time


def _drawn(num_train, num_test, num_classes, height, width, seed):
    """(train images, train labels, test images, test labels), read-only, of these arguments."""
    key = (num_train, num_test, num_classes, height, width, seed)
    arrays = _CACHE.pop(key, None)
    if arrays is None:
        pattern_seq, train_seq, test_seq = np.random.SeedSequence(seed).spawn(3)
        grids = (
            np.random.default_rng(pattern_seq)
            .uniform(32, 224, size=(num_classes, _GRID, _GRID, 3))
            .astype(np.float32)
        )
        patterns = _upsample(grids, height, width)
        arrays = (
            *_draw(np.random.default_rng(train_seq), patterns, num_train),
            *_draw(np.random.default_rng(test_seq), patterns, num_test),
        )
        for array in arrays:
            array.flags.writeable = False
        if sum(a.nbytes for a in arrays) > _CACHE_MAX_BYTES:
            return arrays
    _CACHE[key] = arrays  # most recently used last
    while len(_CACHE) > _CACHE_SIZE:
        del _CACHE[next(iter(_CACHE))]
    return arrays


def _draw(rng, patterns, n):
    num_classes = patterns.shape[0]
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int32)
    images = np.empty((n,) + patterns.shape[1:], dtype=np.uint8)
    # In chunks: the float32 intermediate of a large set would otherwise
    # need several times the memory of the uint8 result.
    for start in range(0, n, 1024):
        lab = labels[start : start + 1024]
        x = patterns[lab] + rng.normal(0, _NOISE_STD, size=(len(lab),) + patterns.shape[1:])
        x += rng.uniform(
            -_MAX_BRIGHTNESS_SHIFT, _MAX_BRIGHTNESS_SHIFT, size=(len(lab), 1, 1, 1)
        )
        images[start : start + 1024] = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return images, labels
