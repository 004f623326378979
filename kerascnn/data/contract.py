"""The contract every data source fulfils.

A source hands out labelled images as `tf.data` datasets of
`(image, label)` pairs: `image` is `uint8` with shape `image_shape`
(height, width, 3: grayscale sets are repeated to three channels so every
model sees RGB), `label` is a scalar `int32` in `[0, len(class_names))`.
Batching, the validation split, normalisation and augmentation belong to
`kerascnn.data.pipeline`, never to a source.

A label outside that range would silently become an all-zero one-hot row
(`tf.one_hot` does not complain), so sources check their labels:
`check_labels` for labels held in NumPy (when the arrays are read),
`checked_label` inside a tf.data map for labels read lazily.
"""

import dataclasses
import re

import numpy as np
import tensorflow as tf

from kerascnn.errors import DataError


@dataclasses.dataclass(frozen=True)
class SourceInfo:
    """What a source knows about its data before any image is read.

    Attributes:
        name: a short description that identifies the data, stored in the
            run's config (`"cifar10"`, `"synthetic"`, `"folder:/abs/path"`,
            `"cifar10-binary:/abs/path"`).
        class_names: one name per label, in label order.
        num_train: number of examples in the training split.
        num_test: number of examples in the test split.
        image_shape: `(height, width, 3)` of every image the source yields.
    """

    name: str
    class_names: tuple
    num_train: int
    num_test: int
    image_shape: tuple

    @property
    def num_classes(self):
        return len(self.class_names)


_LABEL_MARK = "label outside the class range"


def _label_message(where, label, num_classes):
    return (
        f"{where} has label {label}, outside the class range 0..{num_classes - 1} "
        f"({num_classes} classes): the labels are damaged or the list of class names "
        "is too short; fix the data"
    )


def check_labels(labels, num_classes, where):
    """Raise DataError naming the first label of `labels` outside `[0, num_classes)`.

    One vectorised NumPy pass, cheap enough to run whenever arrays are read.
    `where` names the data (`"cifar10-binary:/x test split"`); the message
    adds the example's index.
    """
    labels = np.asarray(labels)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        i = int(bad[0])
        others = f" (and {bad.size - 1} more)" if bad.size > 1 else ""
        raise DataError(
            _label_message(f"{where} example {i}{others}", int(labels[i]), num_classes)
        )


def checked_label(label, num_classes):
    """`label` (a scalar int tensor) after asserting, in the graph, that it is a class.

    For sources that read labels lazily in tf.data. A bad label fails the
    read with an InvalidArgumentError that `DataSource.describe_read_error`
    turns into one line naming the label.
    """
    label = tf.convert_to_tensor(label)
    ok = tf.logical_and(label >= 0, label < num_classes)
    with tf.control_dependencies([tf.debugging.Assert(ok, [_LABEL_MARK, label])]):
        return tf.identity(label)


class DataSource:
    """Base class: subclasses set `self.info` and implement the two readers.

    Attributes:
        skipped_images: files left out because they cannot be decoded
            (only image folders opened with `skip_bad_images=True`).
    """

    info: SourceInfo
    skipped_images: tuple = ()

    def train_examples(self, indices: np.ndarray) -> tf.data.Dataset:
        """The training examples whose index (0-based, in the source's own
        fixed order) is in `indices`, in that fixed order; deterministic."""
        raise NotImplementedError

    def test_examples(self) -> tf.data.Dataset:
        """Every example of the test split, in the source's fixed order."""
        raise NotImplementedError

    def train_reader(self, indices: np.ndarray):
        """A function `order -> tf.data.Dataset` for sources that can read in any order, else None.

        `order` is an int64 tensor of positions in `checked_indices(indices)`; the dataset
        yields those examples in that order. A training set too large to keep in memory is
        read anew every epoch: with a reader, in a fresh permutation each epoch, as the
        in-memory path shuffles; without one, in the fixed order through a shuffle buffer
        (`pipeline.streamed_batches`), which only mixes neighbours. The default is None.
        """
        return None

    def describe_read_error(self, error: Exception) -> str:
        """A one-line message for a read failure raised while iterating.

        Sources that read files override this to name the file at fault.
        A label rejected by `checked_label` is described as such.
        """
        text = str(getattr(error, "message", error))
        if _LABEL_MARK in text:
            found = re.search(re.escape(_LABEL_MARK) + r"\W*\[(-?\d+)\]", text)
            label = found.group(1) if found else "?"
            return _label_message(self.info.name, label, self.info.num_classes)
        return f"could not read the data of {self.info.name}: {error}"


def checked_indices(indices, num_examples):
    """`indices` as a sorted int64 array without duplicates.

    The contract returns examples in the source's fixed order, so the order
    (and repetitions) of `indices` do not matter. Raises ValueError (a bug,
    not a user error) for an index outside `[0, num_examples)`.
    """
    idx = np.unique(np.asarray(indices, dtype=np.int64).reshape(-1))
    if idx.size and (idx[0] < 0 or idx[-1] >= num_examples):
        raise ValueError(
            f"train_examples: indices must lie in [0, {num_examples}). "
            f"Received: indices with min={idx[0]}, max={idx[-1]}"
        )
    return idx


class ArraySource(DataSource):
    """A source backed by in-memory arrays.

    Subclasses set `self.info` and four arrays: `_train_images` and
    `_test_images` (uint8, `(N, H, W, 3)`), `_train_labels` and
    `_test_labels` (int32, `(N,)`). The labels are checked against the
    class range (`check_labels`) before any dataset is handed out; sources
    that can name the file and record of a bad label check earlier.
    """

    _labels_checked = False

    def _check_labels_once(self):
        if not self._labels_checked:
            n = self.info.num_classes
            check_labels(self._train_labels, n, f"{self.info.name} training split")
            check_labels(self._test_labels, n, f"{self.info.name} test split")
            self._labels_checked = True

    def train_examples(self, indices):
        self._check_labels_once()
        idx = checked_indices(indices, self.info.num_train)
        return tf.data.Dataset.from_tensor_slices(
            (self._train_images[idx], self._train_labels[idx])
        )

    def test_examples(self):
        self._check_labels_once()
        return tf.data.Dataset.from_tensor_slices((self._test_images, self._test_labels))
