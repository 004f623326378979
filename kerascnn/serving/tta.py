"""Test-time augmentation: horizontal flips, flips with one-pixel shifts, and AlexNet's ten patches.

Flip: p = (softmax(f(x)) + softmax(f(flip(x)))) / 2, one extra forward pass,
the test-time augmentation of the fast CIFAR-10 recipes (cifar10-fast,
airbench), reported beside the plain figure.

Flips and shifts (airbench94's second test-time level, Jordan 2024, "94% on
CIFAR-10 in 3.29 seconds on a single GPU"): the flip average of the image
itself weighs one half, and the flip averages of the image moved one pixel
up-left and one pixel down-right (the edge filled by reflection, as the
`cifar` preset's training crops pad by default) weigh one quarter each:

    p = 1/2 flip_avg(x) + 1/4 flip_avg(shift(x, -1, -1)) + 1/4 flip_avg(shift(x, +1, +1))

six forward passes per image. The shifts are smaller than the training
crops' (up to 4 pixels), so under the default `cifar` augmentation every
view is one the network was trained on. A run trained with `--pad-mode zero`
(a black edge), `--translate 0` (no shifts) or `--flip none` (no mirrors) is
tested on views it never saw: its TTA figures say less than the recipes'.
airbench averages logits; here softmax probabilities are averaged, as in
the flip average above, so the three figures are averages of the same kind.

Ten patches (Krizhevsky et al. 2012, section 4.1): "At test time, the network makes a prediction by extracting five 224x224
patches (the four corner patches and the center patch) as well as their
horizontal reflections (hence ten patches in all), and averaging the
predictions made by the network's softmax layer on the ten patches."
"""

import numpy as np
import tensorflow as tf

from kerascnn.data.pipeline import any_batch_spec
from kerascnn.serving.scoring import ProbabilityScores
from kerascnn.serving.test_time_views import VIEW_SHIFTS, combine_views  # noqa: F401 (combine_views is re-exported)


def ten_crop_metrics(model, dataset):
    """Accuracy, top-5 accuracy and cross-entropy of the averaged softmax of ten patches.

    Args:
        model: a Keras model that outputs logits.
        dataset: batches `(views [10, B, h, w, 3], one-hot labels [B, C])`,
            as made by `kerascnn.data.pipeline.ten_crop_batches`.

    Returns:
        {"accuracy", "top5_accuracy", "cross_entropy", "images"}, where
        p = mean over the ten patches of softmax(logits) and the
        cross-entropy is the mean of -log p(true class).
    """

    @tf.function(input_signature=[any_batch_spec(dataset.element_spec[0], axis=1)])
    def averaged_probabilities(views):
        shape = tf.shape(views)
        flat = tf.reshape(views, tf.concat([[shape[0] * shape[1]], shape[2:]], axis=0))
        probs = tf.nn.softmax(tf.cast(model(flat, training=False), tf.float32))
        return tf.reduce_mean(tf.reshape(probs, [shape[0], shape[1], -1]), axis=0)

    scores = ProbabilityScores()
    for views, onehot in dataset:
        scores.add(averaged_probabilities(views).numpy(), np.argmax(onehot.numpy(), axis=1))
    return scores.result()


def _score_views(model, dataset, make_views, combine, scores):
    """Add to each of `scores` its combination of the views' probabilities, batch by batch; returns `scores`.

    One traced forward pass per batch over all of `make_views(images)` at
    once; `combine` maps the views' softmax outputs, in that order, to one
    probability array per entry of `scores`.
    """

    @tf.function(input_signature=[any_batch_spec(dataset.element_spec[0])], autograph=False)
    def combined_probabilities(images):
        views = make_views(images)
        logits = model(tf.concat(views, axis=0), training=False)
        if isinstance(logits, (list, tuple)):  # auxiliary heads: the main one is first
            logits = logits[0]
        return combine(tf.split(tf.nn.softmax(tf.cast(logits, tf.float32)), len(views), axis=0))

    for images, onehot in dataset:
        labels = np.argmax(onehot.numpy(), axis=1)
        for score, probs in zip(scores, combined_probabilities(images)):
            score.add(probs.numpy(), labels)
    return scores


def score_with_flips(model, dataset, num_classes=None):
    """(plain, flip) `ProbabilityScores` of `model` on `dataset`, in one pass over it.

    One traced forward pass per batch over the images and their mirrors; the
    plain scores also count the confusion matrix when `num_classes` is given.
    This is the whole test-split evaluation of a run: one trace instead of
    one for the metrics, one for the confusion matrix and one for the flips.
    """
    return _score_views(
        model, dataset,
        lambda images: [images, tf.reverse(images, axis=[2])],
        lambda probs: (probs[0], (probs[0] + probs[1]) / 2.0),
        (ProbabilityScores(num_classes), ProbabilityScores()),
    )


def shift(images, dy, dx):
    """`images` [B, h, w, C] moved `dy` pixels down and `dx` right, the uncovered edge reflected.

    shift(x, 1, 1)[:, i, j] = x[:, i - 1, j - 1] inside the image; row and
    column 0 take the reflection of rows and columns 1 (tf.pad REFLECT, which
    does not repeat the edge pixel).
    """
    pad_y, pad_x = abs(dy), abs(dx)
    padded = tf.pad(images, [[0, 0], [pad_y, pad_y], [pad_x, pad_x], [0, 0]], mode="REFLECT")
    h, w = tf.shape(images)[1], tf.shape(images)[2]
    return padded[:, pad_y - dy:pad_y - dy + h, pad_x - dx:pad_x - dx + w]


def flip_shift_views(images):
    """The six views of `images` [B, h, w, C]: the three `VIEW_SHIFTS`, then the mirror of each."""
    views = [shift(images, dy, dx) for dy, dx in VIEW_SHIFTS]
    return views + [tf.reverse(v, axis=[2]) for v in views]


def score_with_flips_and_shifts(model, dataset):
    """(plain, flip, flip and shift) `ProbabilityScores` of `model` on `dataset`, in one pass.

    One traced forward pass per batch over the six `flip_shift_views` of
    every image, combined as the module docstring says.
    """
    scores = (ProbabilityScores(), ProbabilityScores(), ProbabilityScores())
    return _score_views(model, dataset, flip_shift_views, combine_views, scores)


def test_time_metrics(model, dataset):
    """{"plain", "flip", "flip_shift"}: the metrics of each test-time augmentation, in one pass.

    Each value is {"accuracy", "top5_accuracy", "cross_entropy", "images"};
    see `score_with_flips_and_shifts`.
    """
    plain, flip, flip_shift = score_with_flips_and_shifts(model, dataset)
    return {"plain": plain.result(), "flip": flip.result(), "flip_shift": flip_shift.result()}


def plain_and_flip_metrics(model, dataset):
    """(plain, flip) metrics of `model` on `dataset` in one pass; see `flip_metrics`."""
    plain, flip = score_with_flips(model, dataset)
    return plain.result(), flip.result()


def flip_metrics(model, dataset):
    """Accuracy, top-5 accuracy and cross-entropy of the softmax averaged over each image and its mirror.

    Args:
        model: a Keras model that outputs logits.
        dataset: the plain test batches `(normalised images [B, h, w, 3], one-hot labels [B, C])`.

    Returns:
        {"accuracy", "top5_accuracy", "cross_entropy", "images"} with
        p = (softmax(f(x)) + softmax(f(x flipped left-right))) / 2.
    """
    return plain_and_flip_metrics(model, dataset)[1]
