"""The contract every data source fulfils.

A source hands out labelled images as `tf.data` datasets of
`(image, label)` pairs: `image` is `uint8` with shape `image_shape`
(height, width, 3: grayscale sets are repeated to three channels so every
model sees RGB), `label` is a scalar `int32` in `[0, len(class_names))`.
Batching, the validation split, normalisation and augmentation belong to
`kerascnn.data.pipeline`, never to a source.
"""

import dataclasses

import numpy as np
import tensorflow as tf


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


class DataSource:
    """Base class: subclasses set `self.info` and implement the two readers."""

    info: SourceInfo

    def train_examples(self, indices: np.ndarray) -> tf.data.Dataset:
        """The training examples whose index (0-based, in the source's own
        fixed order) is in `indices`, in that fixed order; deterministic."""
        raise NotImplementedError

    def test_examples(self) -> tf.data.Dataset:
        """Every example of the test split, in the source's fixed order."""
        raise NotImplementedError

    def describe_read_error(self, error: Exception) -> str:
        """A one-line message for a read failure raised while iterating.

        Sources that read files override this to name the file at fault.
        """
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
    `_test_labels` (int32, `(N,)`).
    """

    def train_examples(self, indices):
        idx = checked_indices(indices, self.info.num_train)
        return tf.data.Dataset.from_tensor_slices(
            (self._train_images[idx], self._train_labels[idx])
        )

    def test_examples(self):
        return tf.data.Dataset.from_tensor_slices((self._test_images, self._test_labels))
