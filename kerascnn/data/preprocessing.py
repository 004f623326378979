"""Resizing and normalisation, shared by training and the exported model.

The same `Preprocessing` object maps uint8 images to model inputs in the
tf.data pipeline and inside the SavedModel's serving signature, so the two
cannot drift apart.
"""

import dataclasses

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """uint8 RGB images -> float32 model inputs.

    `x = (resize(image, image_size) - mean) / std`, per channel, on the 0-255
    scale; `mean` and `std` are measured on the training split of the run.
    Resizing is bilinear with antialiasing (which only matters when
    shrinking) and is skipped when the image already has `image_size`.

    Attributes:
        image_size: (height, width) of the model input.
        mean: per-channel mean of the training pixels (R, G, B), 0-255 scale.
        std: per-channel standard deviation of the training pixels.
    """

    image_size: tuple
    mean: tuple
    std: tuple

    def __call__(self, images):
        """Map a batch `[N, H, W, 3]` (uint8 or float, 0-255) to model inputs."""
        x = tf.cast(images, tf.float32)
        x = self.resize(x)
        mean = tf.constant(self.mean, tf.float32)
        std = tf.constant(self.std, tf.float32)
        return (x - mean) / std

    def resize(self, x):
        target = tuple(int(s) for s in self.image_size)
        static = tuple(x.shape[1:3])
        if static == target:
            return x
        if None not in static:
            return tf.image.resize(x, target, method="bilinear", antialias=True)
        # Unknown size at trace time (the serving signature): decide per call.
        same = tf.reduce_all(tf.equal(tf.shape(x)[1:3], target))
        return tf.cond(
            same,
            lambda: tf.ensure_shape(x, [None, *target, 3]),
            lambda: tf.image.resize(x, target, method="bilinear", antialias=True),
        )

    def to_dict(self):
        return {"image_size": list(self.image_size), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d):
        return cls(tuple(d["image_size"]), tuple(d["mean"]), tuple(d["std"]))
