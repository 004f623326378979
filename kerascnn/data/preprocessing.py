"""Resizing and normalisation, shared by training and the exported model.

The same `Preprocessing` object maps uint8 images to model inputs in the
tf.data pipeline and inside the SavedModel's serving signature, so the two
cannot drift apart.
"""

import dataclasses

import tensorflow as tf

CHANNEL_ORDERS = ("rgb", "bgr")


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """uint8 RGB images -> float32 model inputs.

    `x = (resize(image, image_size) - mean) / std`, per channel, on the 0-255
    scale; `mean` and `std` are measured on the training split of the run,
    or are those the pretrained weights were trained with (`--weights`):
    ImageNet's mean (0.485, 0.456, 0.406) x 255 and std (0.229, 0.224,
    0.225) x 255 for torchvision weights, or Caffe's for keras.applications
    VGG and ResNet: mean (123.68, 116.779, 103.939) in R, G, B, std 1, and
    the channels then reversed to B, G, R (`channel_order="bgr"`), which is
    `keras.applications.imagenet_utils.preprocess_input(mode="caffe")`.
    Resizing is bilinear with antialiasing (which only matters when
    shrinking) and is skipped when the image already has `image_size`.
    With `resize_to` (the `alexnet` and `inception` augmentation presets)
    the image is first resized to `resize_to` and the centre `image_size`
    crop is taken, the evaluation view of the AlexNet paper (the centre 224
    of 256).

    Attributes:
        image_size: (height, width) of the model input.
        mean: per-channel mean of the training pixels (R, G, B), 0-255 scale.
        std: per-channel standard deviation of the training pixels.
        channel_order: "rgb", or "bgr" to reverse the channels after
            normalising (Caffe-trained weights). `mean` and `std` stay in
            R, G, B order either way, the order of the images.
        resize_to: (height, width) to resize to before a centre crop of
            `image_size`; None resizes straight to `image_size`.
    """

    image_size: tuple
    mean: tuple
    std: tuple
    # Before resize_to so `Preprocessing(size, *(mean, std, order))` works.
    channel_order: str = "rgb"
    resize_to: tuple = None

    def __post_init__(self):
        if self.channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"channel_order must be 'rgb' or 'bgr'. Received: channel_order={self.channel_order!r}")

    def __call__(self, images):
        """Map a batch `[N, H, W, 3]` (uint8 or float, 0-255) to model inputs."""
        x = tf.cast(images, tf.float32)
        if self.resize_to is None:
            x = self.resize(x)
        else:
            x = self.resize(x, self.resize_to)
            top = (int(self.resize_to[0]) - int(self.image_size[0])) // 2
            left = (int(self.resize_to[1]) - int(self.image_size[1])) // 2
            x = x[:, top : top + int(self.image_size[0]), left : left + int(self.image_size[1]), :]
        return self.normalize(x)

    def normalize(self, x):
        """`(x - mean) / std` per channel, for float images already at `image_size`.

        With `channel_order="bgr"` the normalised channels are then reversed.
        """
        # One multiply-add per pixel: x * (1/std) + (-mean/std).
        scale = tf.constant([1.0 / s for s in self.std], tf.float32)
        shift = tf.constant([-m / s for m, s in zip(self.mean, self.std)], tf.float32)
        x = tf.cast(x, tf.float32) * scale + shift
        if self.channel_order == "bgr":
            x = tf.reverse(x, axis=[-1])
        return x

    def resize(self, x, size=None):
        target = tuple(int(s) for s in (size or self.image_size))
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
        d = {"image_size": list(self.image_size), "mean": list(self.mean), "std": list(self.std)}
        if self.resize_to is not None:
            d["resize_to"] = list(self.resize_to)
        if self.channel_order != "rgb":  # older readers never see the key for RGB
            d["channel_order"] = self.channel_order
        return d

    @classmethod
    def from_dict(cls, d):
        resize_to = d.get("resize_to")
        return cls(
            tuple(d["image_size"]),
            tuple(d["mean"]),
            tuple(d["std"]),
            channel_order=d.get("channel_order", "rgb"),  # absent in runs before pretrained weights
            resize_to=None if resize_to is None else tuple(resize_to),
        )
