"""Test-time augmentation: horizontal flips, and AlexNet's ten patches.

Flip: p = (softmax(f(x)) + softmax(f(flip(x)))) / 2, one extra forward pass,
the test-time augmentation of the fast CIFAR-10 recipes (cifar10-fast,
airbench), reported beside the plain figure.

Ten patches (Krizhevsky et al. 2012, section 4.1): "At test time, the network makes a prediction by extracting five 224x224
patches (the four corner patches and the center patch) as well as their
horizontal reflections (hence ten patches in all), and averaging the
predictions made by the network's softmax layer on the ten patches."
"""

import numpy as np
import tensorflow as tf

from kerascnn.data.pipeline import any_batch_spec
from kerascnn.serving.scoring import ProbabilityScores


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


def score_with_flips(model, dataset, num_classes=None):
    """(plain, flip) `ProbabilityScores` of `model` on `dataset`, in one pass over it.

    One traced forward pass per batch over the images and their mirrors; the
    plain scores also count the confusion matrix when `num_classes` is given.
    This is the whole test-split evaluation of a run: one trace instead of
    one for the metrics, one for the confusion matrix and one for the flips.
    """

    @tf.function(input_signature=[any_batch_spec(dataset.element_spec[0])], autograph=False)
    def both_probabilities(images):
        logits = model(tf.concat([images, tf.reverse(images, axis=[2])], axis=0), training=False)
        if isinstance(logits, (list, tuple)):  # auxiliary heads: the main one is first
            logits = logits[0]
        plain, mirrored = tf.split(tf.nn.softmax(tf.cast(logits, tf.float32)), 2, axis=0)
        return plain, (plain + mirrored) / 2.0

    plain_scores, flip_scores = ProbabilityScores(num_classes), ProbabilityScores()
    for images, onehot in dataset:
        labels = np.argmax(onehot.numpy(), axis=1)
        plain, flipped = both_probabilities(images)
        plain_scores.add(plain.numpy(), labels)
        flip_scores.add(flipped.numpy(), labels)
    return plain_scores, flip_scores


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
