"""Training augmentation on whole batches, inside tf.data.

Every operation here takes a batch `[B, H, W, 3]` and a stateless seed (a
`[2]` integer tensor), and draws one independent random choice per image with
`tf.random.stateless_*`. The pipeline pairs each batch with a fresh seed from
`tf.data.Dataset.random(seed, rerandomize_each_iteration=True)`, so the
augmentation differs every epoch, is the same for the same `--seed`, and can
run on several threads without sharing random state. Working on batches
rather than single images pays the per-op overhead once per batch; see
`benchmarks/pipeline.py` for what that buys.

Presets (`--augment`):
    cifar      pad 4 (reflect or zero) + random crop back to size + flip
               (He et al. 2016, section 4.2, after Lee et al. 2015).
    alexnet    resize to 8/7 of the input size (256 for 224) + random crop
               + flip, with PCA colour jitter (Krizhevsky et al. 2012, 4.1);
               evaluation takes the centre crop, or with `--tta` averages the
               ten patches (corners and centre, with reflections).
    inception  random-resized crop (area 8%-100%, aspect 3/4-4/3) + flip
               (Szegedy et al. 2015, section 6); evaluation as alexnet.
    none       resize only.
Switches on top of any preset: PCA jitter, cutout (DeVries & Taylor 2017),
random erasing (Zhong et al. 2020), and which images the flip mirrors
(`--flip`): a fresh half every epoch (random, the papers'), airbench's
alternating flip (`alternating_flips`), or none.
"""

import dataclasses
import math

import tensorflow as tf

from kerascnn.config import AUGMENT_PRESETS as PRESETS  # one list, also validated by DataConfig
from kerascnn.config import CIFAR_PAD  # one default for DataConfig and Augmentation
from kerascnn.config import FLIPS  # one list, also validated by DataConfig
from kerascnn.errors import ConfigError

SMALL_IMAGE_LIMIT = 64  # inputs up to this size default to the `cifar` preset
# AlexNet trains on 224 crops of 256 images: the canvas is 8/7 of the crop.
CANVAS_RATIO = 256 / 224


def default_preset(image_size):
    """`cifar` for inputs of 64 pixels or less, the AlexNet recipe above that."""
    return "cifar" if max(image_size) <= SMALL_IMAGE_LIMIT else "alexnet"


def canvas_size(image_size):
    """The size images are resized to before a crop of `image_size` (256 for 224)."""
    return tuple(int(round(s * CANVAS_RATIO)) for s in image_size)


def eval_resize(preset, image_size):
    """What evaluation resizes to before its centre crop; None: plain resize."""
    return canvas_size(image_size) if preset in ("alexnet", "inception") else None


# --- random draws -----------------------------------------------------------


def _split(seed, n):
    """n independent stateless seeds from one."""
    return tf.unstack(tf.random.experimental.stateless_split(seed, n))


def _uniform_int(shape, seed, maxval):
    """Integers in [0, maxval] (inclusive), maxval a scalar or per-image tensor."""
    u = tf.random.stateless_uniform(shape, seed)
    return tf.cast(tf.floor(u * (tf.cast(maxval, tf.float32) + 1.0)), tf.int32)


# The second half of the key of the alternating flip's permutation (the run's seed is the first),
# so that it draws independently of the shuffles and crops seeded by the same --seed.
_ALTERNATING_FLIP_STREAM = 0x0F11B


def alternating_flips(image_ids, epoch, seed, num_images):
    """Which images of a batch the alternating flip mirrors in `epoch` (0-based): bool [B].

    Jordan (2024), "94% on CIFAR-10 in 3.29 seconds on a single GPU", section
    3.6: "For the first epoch, we randomly flip 50% of inputs as usual. Then
    on epochs {2,4,6,...}, we flip only those inputs which were not flipped in
    the first epoch, and on epochs {3,5,7,...}, we flip only those inputs
    which were flipped in the first epoch." So every pair of consecutive
    epochs shows each training image once as it is and once mirrored, where
    random flips show about half of the images the same way twice.

    With f(i) whether image i is flipped in the first epoch, epoch e flips
    image i iff f(i) XOR (e odd). f(i) is position(i) < num_images // 2 in a
    pseudorandom permutation of the `num_images` training images keyed by
    `seed` (`tf.random.experimental.index_shuffle`), so the first epoch flips
    exactly half of them, whatever order the shuffle brings them in, and no
    per-image state is kept.

    Args:
        image_ids: int64 [B], each image's index in the training set.
        epoch: int64 scalar, the epoch number from 0.
        seed: the run's seed.
        num_images: the size of the training set.
    """
    key = tf.constant([seed, _ALTERNATING_FLIP_STREAM], tf.int64)
    position = tf.random.experimental.index_shuffle(
        tf.cast(image_ids, tf.int64), key, tf.constant(max(num_images - 1, 0), tf.int64)
    )
    first = position < num_images // 2
    return tf.not_equal(first, tf.equal(tf.math.floormod(tf.cast(epoch, tf.int64), 2), 1))


# --- geometric ops --------------------------------------------------------


def crop_at(images, offsets, size):
    """Crop each image at its own (top, left) offset to `size`; exact, by gather.

    Args:
        images: [B, H, W, C].
        offsets: int32 [B, 2].
        size: (height, width) of the crops.
    """
    h, w = size
    rows = offsets[:, 0:1] + tf.range(h)[None, :]
    cols = offsets[:, 1:2] + tf.range(w)[None, :]
    out = tf.gather(images, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)


def random_crop(images, size, seed):
    """A uniformly placed `size` crop of every image."""
    shape = tf.shape(images)
    room = tf.stack([shape[1] - size[0], shape[2] - size[1]])
    offsets = _uniform_int([shape[0], 2], seed, room[None, :])
    return crop_at(images, offsets, size)


def _reflect(index, n):
    """Map indices in [-(n-1), 2(n-1)] into [0, n) as REFLECT padding does (edge not repeated)."""
    index = tf.abs(index)
    return (n - 1) - tf.abs((n - 1) - index)


def random_pad_crop_flip(images, amount, seed, mode="reflect", flips=None):
    """Pad by `amount`, crop back to the input size at a random offset, flip half.

    `flips` (bool [B]) names the images to mirror instead of drawing them
    (the alternating flip, or none); the crops are drawn the same either way.

    The `cifar` recipe (He et al. 2016, section 4.2) as two gathers: each
    output row and column is mapped straight to its source pixel (through
    the reflection, or outside the image for zero padding), and the flip is
    the column order reversed, so the padded image is never materialised.
    Exactly equal to `random_flip(random_crop(pad(images)))` with the same
    draws, and cheap enough to run on uint8 before the cast to float.
    """
    shape = tf.shape(images)
    b, h, w = shape[0], shape[1], shape[2]
    s_offset, s_flip = _split(seed, 2)
    offsets = _uniform_int([b, 2], s_offset, 2 * amount) - amount
    rows = offsets[:, 0:1] + tf.range(h)[None, :]
    cols = offsets[:, 1:2] + tf.range(w)[None, :]
    flip = tf.random.stateless_uniform([b], s_flip) < 0.5 if flips is None else flips
    cols = tf.where(flip[:, None], tf.reverse(cols, axis=[1]), cols)
    if mode == "reflect":
        out = tf.gather(images, _reflect(rows, h), axis=1, batch_dims=1)
        return tf.gather(out, _reflect(cols, w), axis=2, batch_dims=1)
    inside_rows = (rows >= 0) & (rows < h)
    inside_cols = (cols >= 0) & (cols < w)
    out = tf.gather(images, tf.clip_by_value(rows, 0, h - 1), axis=1, batch_dims=1)
    out = tf.gather(out, tf.clip_by_value(cols, 0, w - 1), axis=2, batch_dims=1)
    inside = inside_rows[:, :, None, None] & inside_cols[:, None, :, None]
    return out * tf.cast(inside, out.dtype)


def pad(images, amount, mode="reflect"):
    """Pad height and width by `amount` on each side ("reflect" or "zero")."""
    paddings = [[0, 0], [amount, amount], [amount, amount], [0, 0]]
    return tf.pad(images, paddings, mode="REFLECT" if mode == "reflect" else "CONSTANT")


def random_flip(images, seed, flips=None):
    """Mirror each image left-right with probability 1/2, or those `flips` (bool [B]) names."""
    flip = tf.random.stateless_uniform([tf.shape(images)[0]], seed) < 0.5 if flips is None else flips
    return tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)


def center_crop(images, size):
    shape = tf.shape(images)
    top = (shape[1] - size[0]) // 2
    left = (shape[2] - size[1]) // 2
    return images[:, top : top + size[0], left : left + size[1], :]


def resize(images, size):
    """Bilinear (antialiased) resize, skipped when the size already matches."""
    if tuple(images.shape[1:3]) == tuple(size):
        return images
    return tf.image.resize(images, size, method="bilinear", antialias=True)


def random_resized_crop(images, size, seed, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), attempts=10):
    """Inception-style crop: random area and aspect ratio, resized to `size`.

    Szegedy et al. 2015 (GoogLeNet), section 6: patches of 8% to 100% of the
    image area with aspect ratio in [3/4, 4/3]. As in torchvision's
    RandomResizedCrop, `attempts` (area, aspect) pairs are drawn per image,
    the aspect log-uniformly; the first that fits is used, and an image with
    none that fits falls back to its whole area. Vectorised: all attempts of
    the batch are drawn at once.
    """
    shape = tf.shape(images)
    b = shape[0]
    height = tf.cast(shape[1], tf.float32)
    width = tf.cast(shape[2], tf.float32)
    s_area, s_ratio, s_y, s_x = _split(seed, 4)
    area = height * width * tf.random.stateless_uniform([b, attempts], s_area, scale[0], scale[1])
    log_ratio = tf.random.stateless_uniform([b, attempts], s_ratio, math.log(ratio[0]), math.log(ratio[1]))
    aspect = tf.exp(log_ratio)
    crop_w = tf.round(tf.sqrt(area * aspect))
    crop_h = tf.round(tf.sqrt(area / aspect))
    fits = (crop_w <= width) & (crop_h <= height) & (crop_w > 0) & (crop_h > 0)
    first = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)
    any_fit = tf.reduce_any(fits, axis=1)
    pick = lambda t: tf.gather(t, first, axis=1, batch_dims=1)  # noqa: E731
    crop_h = tf.where(any_fit, pick(crop_h), height)
    crop_w = tf.where(any_fit, pick(crop_w), width)
    top = tf.floor(tf.random.stateless_uniform([b], s_y) * (height - crop_h + 1))
    left = tf.floor(tf.random.stateless_uniform([b], s_x) * (width - crop_w + 1))
    # crop_and_resize samples box corners at pixel centres: y1 = top/(H-1).
    boxes = tf.stack(
        [
            top / tf.maximum(height - 1, 1),
            left / tf.maximum(width - 1, 1),
            (top + crop_h - 1) / tf.maximum(height - 1, 1),
            (left + crop_w - 1) / tf.maximum(width - 1, 1),
        ],
        axis=1,
    )
    return tf.image.crop_and_resize(images, boxes, tf.range(b), size, method="bilinear")


# --- occlusion (after normalisation) -----------------------------------------


def _box_mask(shape, top, left, box_h, box_w):
    """1 inside each image's box [top, top+h) x [left, left+w), else 0; [B, H, W, 1]."""
    rows = tf.range(shape[1])[None, :]
    cols = tf.range(shape[2])[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + box_h)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + box_w)[:, None])
    return tf.cast(in_rows[:, :, None, None] & in_cols[:, None, :, None], tf.float32)


def cutout(images, size, seed):
    """Zero one `size` x `size` square per image (DeVries & Taylor 2017).

    The square's centre is uniform over the image and the square is clipped
    at the border, as in the paper. Applied after normalisation, so zero is
    the training mean.
    """
    shape = tf.shape(images)
    centre = tf.cast(
        tf.floor(tf.random.stateless_uniform([shape[0], 2], seed) * tf.cast(shape[1:3], tf.float32)), tf.int32
    )
    top = centre[:, 0] - size // 2
    left = centre[:, 1] - size // 2
    mask = _box_mask(shape, top, left, size, size)
    return images * (1.0 - mask)


def random_erasing(images, probability, seed, scale=(0.02, 0.4), ratio=(0.3, 1 / 0.3), attempts=10):
    """Random erasing (Zhong et al. 2020): with `probability`, replace a rectangle by noise.

    Per image: area `S_e ~ U(scale) * H * W`, aspect `r_e ~ U(ratio)`
    (log-uniform here, symmetric in r and 1/r), `h = sqrt(S_e r_e)`,
    `w = sqrt(S_e / r_e)`; the first of `attempts` draws that fits is erased
    with values ~ N(0, 1), i.e. random pixels on the normalised scale.
    """
    shape = tf.shape(images)
    b = shape[0]
    height = tf.cast(shape[1], tf.float32)
    width = tf.cast(shape[2], tf.float32)
    s_apply, s_area, s_ratio, s_pos, s_noise = _split(seed, 5)
    apply = tf.random.stateless_uniform([b], s_apply) < probability
    area = height * width * tf.random.stateless_uniform([b, attempts], s_area, scale[0], scale[1])
    aspect = tf.exp(tf.random.stateless_uniform([b, attempts], s_ratio, math.log(ratio[0]), math.log(ratio[1])))
    box_h = tf.round(tf.sqrt(area * aspect))
    box_w = tf.round(tf.sqrt(area / aspect))
    fits = (box_h < height) & (box_w < width) & (box_h > 0) & (box_w > 0)
    first = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)
    apply = apply & tf.reduce_any(fits, axis=1)
    box_h = tf.gather(box_h, first, axis=1, batch_dims=1)
    box_w = tf.gather(box_w, first, axis=1, batch_dims=1)
    u = tf.random.stateless_uniform([b, 2], s_pos)
    top = tf.floor(u[:, 0] * (height - box_h + 1))
    left = tf.floor(u[:, 1] * (width - box_w + 1))
    as_int = lambda t: tf.cast(t, tf.int32)  # noqa: E731
    mask = _box_mask(shape, as_int(top), as_int(left), as_int(box_h), as_int(box_w))
    mask = mask * tf.cast(apply, tf.float32)[:, None, None, None]
    noise = tf.random.stateless_normal(tf.shape(images), s_noise, dtype=images.dtype)
    return images * (1.0 - mask) + noise * mask


# --- test-time augmentation ---------------------------------------------------


def ten_crops(images, size):
    """The AlexNet paper's ten test patches: four corners and centre, and their mirrors.

    Returns `[10, B, h, w, C]` in the order: top-left, top-right,
    bottom-left, bottom-right, centre, then the same five mirrored.
    """
    h, w = size
    shape = tf.shape(images)
    bottom = shape[1] - h
    right = shape[2] - w
    crops = [
        images[:, :h, :w],
        images[:, :h, right:],
        images[:, bottom:, :w],
        images[:, bottom:, right:],
        center_crop(images, size),
    ]
    crops += [tf.reverse(c, axis=[2]) for c in crops]
    return tf.stack(crops)


# --- the training recipe ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """One run's training augmentation and the test view that matches it.

    Attributes:
        preset: one of `PRESETS`.
        image_size: (height, width) the model sees.
        pad_mode: "reflect" or "zero" padding of the `cifar` preset.
        translate: pixels the `cifar` preset pads each side by and so the
            largest shift of its crop (`CIFAR_PAD`, 4, by default; 0 leaves
            only the flip).
        pca: {"eigenvalues", "eigenvectors"} when PCA colour jitter is on
            (see `kerascnn.data.fit_pca`), else None.
        pca_sigma, pca_scale: the jitter's `sigma` and `scale`.
        cutout: side of the cutout square in pixels, 0 for none.
        random_erasing: probability of random erasing, 0 for none.
        flip: which images the preset's flip mirrors (`FLIPS`): "random"
            (each with probability 1/2, every epoch anew), "alternating"
            (`alternating_flips`: the pipeline passes the mask) or "none".
    """

    preset: str
    image_size: tuple
    pad_mode: str = "reflect"
    translate: int = CIFAR_PAD
    pca: dict = None
    pca_sigma: float = 0.1
    pca_scale: str = "stddev"
    cutout: int = 0
    random_erasing: float = 0.0
    flip: str = "random"

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"unknown augmentation preset {self.preset!r}; choose one of {PRESETS}")
        if self.flip not in FLIPS:
            raise ValueError(f"unknown flip {self.flip!r}; choose one of {FLIPS}")
        # Reflect padding mirrors the image without repeating its edge: a side of at least pad + 1.
        if self.preset == "cifar" and self.pad_mode == "reflect" and min(self.image_size) <= self.translate:
            h, w = self.image_size
            raise ConfigError(
                f"the cifar augmentation pads {self.translate} pixels by reflection, which needs images of at least "
                f"{self.translate + 1}x{self.translate + 1}; give a larger --image-size, a smaller --translate, "
                f"--pad-mode zero or another "
                f"--augment. Received: image_size={h}x{w}"
            )

    def describe(self):
        """A short human-readable summary, e.g. `cifar (reflect pad 4, crop, flip) + PCA jitter`."""
        flip = {"random": "flip", "alternating": "alternating flip", "none": "no flip"}[self.flip]
        parts = {
            "none": "none",
            "cifar": f"cifar ({self.pad_mode} pad {self.translate}, crop, {flip})" if self.translate else f"cifar ({flip})",
            "alexnet": f"alexnet (crop of 8/7 resize, {flip})",
            "inception": f"inception (random-resized crop, {flip})",
        }[self.preset]
        extras = []
        if self.pca is not None:
            extras.append(f"PCA jitter (sigma {self.pca_sigma:g}, {self.pca_scale})")
        if self.cutout:
            extras.append(f"cutout {self.cutout}")
        if self.random_erasing:
            extras.append(f"random erasing p={self.random_erasing:g}")
        return " + ".join([parts, *extras])

    def geometric(self, images, seed, flips=None):
        """uint8 or float batch -> float32 0-255 batch at `image_size`, randomly cropped/flipped.

        `flips` (bool [B]) are the images to mirror when `flip` is
        "alternating" (the pipeline's `alternating_flips`); None draws them.
        """
        s_crop, s_flip = _split(seed, 2)
        if self.flip == "none":
            flips = tf.zeros([tf.shape(images)[0]], tf.bool)
        elif self.flip == "alternating" and flips is None:
            raise ValueError("the alternating flip mirrors the images the pipeline names: pass `flips`")
        if self.preset == "cifar":
            if tuple(images.shape[1:3]) != tuple(self.image_size):
                images = resize(tf.cast(images, tf.float32), self.image_size)
            # On the stored dtype (uint8): a quarter of the bytes to move.
            return tf.cast(random_pad_crop_flip(images, self.translate, s_crop, self.pad_mode, flips), tf.float32)
        x = tf.cast(images, tf.float32)
        if self.preset == "none":
            return resize(x, self.image_size)
        if self.preset == "alexnet":
            x = random_crop(resize(x, canvas_size(self.image_size)), self.image_size, s_crop)
        else:  # inception
            x = random_resized_crop(x, self.image_size, s_crop)
        return random_flip(x, s_flip, flips)

    def pca_layer(self, seed=None):
        """The PCA jitter layer on 0-255 pixels, or None when jitter is off."""
        if self.pca is None:
            return None
        from kerascnn.layers.pca_jitter import PCAColorJitter

        return PCAColorJitter(
            **self.pca, sigma=self.pca_sigma, scale=self.pca_scale, value_range=(0.0, 255.0), seed=seed
        )

    def geometric_is_compilable(self, input_size):
        """Whether `geometric` compiles with XLA: gathers only, no resize or crop_and_resize."""
        return self.preset in ("none", "cifar") and tuple(input_size) == tuple(self.image_size)

    def photometric(self, images, seed, normalize, layer=None):
        """PCA colour jitter (0-255 scale, clipped) -> `normalize` -> cutout / random erasing.

        `layer` is `self.pca_layer()`, made once outside any traced function.
        """
        s_pca, s_occ = _split(seed, 2)
        x = images
        if layer is not None:
            alpha = tf.random.stateless_normal([tf.shape(x)[0], 3], s_pca, stddev=self.pca_sigma)
            x = layer.shift(x, alpha)
        return self.occlude(normalize(x), s_occ)

    def occlude(self, images, seed):
        """Cutout and random erasing, on normalised images."""
        s_cut, s_erase = _split(seed, 2)
        if self.cutout:
            images = cutout(images, self.cutout, s_cut)
        if self.random_erasing:
            images = random_erasing(images, self.random_erasing, s_erase)
        return images

    def tta_canvas(self, images):
        """The image the ten test patches are cut from, float32 0-255.

        alexnet/inception: resized to 8/7 of the input (the paper's 256 for
        224); cifar: padded like in training, so the corners are the
        extreme training shifts; none: the image itself (the five patches
        coincide and only the mirror differs).
        """
        x = tf.cast(images, tf.float32)
        if self.preset in ("alexnet", "inception"):
            return resize(x, canvas_size(self.image_size))
        x = resize(x, self.image_size)
        if self.preset == "cifar":
            return pad(x, self.translate, self.pad_mode)
        return x
