"""Grad-CAM: where a convolutional network looks when it predicts a class.

Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra, "Grad-CAM: Visual
Explanations from Deep Networks via Gradient-based Localization", ICCV 2017,
section 3, equations (1) and (2). For class c with score y^c (the logit,
before the softmax, as the paper specifies) and the K channels A^k of a
convolutional feature map with Z = H x W positions:

    alpha_k^c = (1 / Z) * sum_i sum_j  d y^c / d A^k_ij        (1) channel weight: the
                                                                 gradient, global-average-pooled
    L^c       = ReLU( sum_k alpha_k^c * A^k )                  (2) the map, H x W

The ReLU keeps the positions whose increase raises y^c. L^c has the feature
map's resolution; for display it is resized bilinearly to the image and
divided by its maximum (a map that is zero everywhere stays zero). The map
is taken, as in the paper, from the last convolutional layer: here the last
layer with a spatial output larger than 1x1 (`target_layer`), so ReLU and
batch-norm outputs after the last convolution, and inception or residual
block outputs, qualify, and poolings do not.
"""

import keras
import numpy as np
import tensorflow as tf

from kerascnn.analysis.graph import walk
from kerascnn.errors import UserError

_NOT_TARGETS = (
    keras.layers.MaxPooling2D, keras.layers.AveragePooling2D, keras.layers.Dropout,
    keras.layers.ZeroPadding2D, keras.layers.Cropping2D, keras.layers.InputLayer,
)


def target_layer(model):
    """Name of the layer Grad-CAM reads: the last one whose output is a map larger than 1x1.

    Falls back to the last 4-D output of any size (a tiny input leaves 1x1
    maps); UserError when the model has no spatial map at all.
    """
    last_any = last_spatial = None
    for call in walk(model):
        if "/" in call.name or isinstance(call.layer, _NOT_TARGETS) or not call.outputs:
            continue
        shape = tuple(call.outputs[0].shape)
        if len(shape) != 4:
            continue
        last_any = call.name
        if (shape[1] or 0) > 1 or (shape[2] or 0) > 1:
            last_spatial = call.name
    name = last_spatial or last_any
    if name is None:
        raise UserError(f"{model.name} has no convolutional feature map for Grad-CAM")
    return name


def grad_cam(model, images, layer=None, classes=None):
    """Grad-CAM maps of `images` (already preprocessed, [N, H, W, C]).

    Args:
        model: a Functional model whose (first) output is the logits.
        images: the model's input batch.
        layer: name of the feature-map layer (default `target_layer(model)`).
        classes: the class c of each image (default: the predicted class).

    Returns:
        (maps [N, h, w] float32 at the feature map's resolution, equation 2,
        not normalised; logits [N, num_classes]; the classes used).
    """
    layer = layer or target_layer(model)
    outputs = model.outputs[0] if isinstance(model.outputs, (list, tuple)) else model.outputs
    probe = keras.Model(model.inputs, [model.get_layer(layer).output, outputs])
    x = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        features, logits = probe(x, training=False)
        tape.watch(features)
        logits = tf.cast(logits, tf.float32)
        if classes is None:
            classes = tf.argmax(logits, axis=-1, output_type=tf.int32)
        classes = tf.convert_to_tensor(classes, dtype=tf.int32)
        score = tf.reduce_sum(tf.gather(logits, classes, axis=1, batch_dims=1))  # y^c of each image
    # Each image's score depends only on its own features, so one gradient of the sum gives them all.
    gradients = tf.cast(tape.gradient(score, features), tf.float32)
    features = tf.cast(features, tf.float32)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)  # (1): alpha_k^c
    maps = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))  # (2): L^c
    return maps.numpy(), logits.numpy(), np.asarray(classes)


def upsample(maps, size):
    """Maps [N, h, w] resized bilinearly to `size` (height, width) and scaled to [0, 1] each."""
    resized = tf.image.resize(tf.convert_to_tensor(maps)[..., None], size, method="bilinear")[..., 0].numpy()
    peak = resized.max(axis=(1, 2), keepdims=True)
    return np.divide(resized, peak, out=np.zeros_like(resized), where=peak > 0)


def plot_grad_cam(rows, images, path, title="", class_names=None, labels=None):
    """A grid: one row per model, one column per image, the map over the image.

    Args:
        rows: [(row label, heatmaps [N, H, W] in [0, 1], predicted classes [N])].
        images: uint8 [N, H, W, 3], the images as they are (before preprocessing).
        class_names: names of the classes, for the titles.
        labels: the true class of each image.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kerascnn.storage.atomic import save_figure

    n = len(images)
    fig, axes = plt.subplots(len(rows) + 1, n, figsize=(1.7 * n + 1.6, 1.75 * (len(rows) + 1) + 0.4), squeeze=False)

    def name(c):
        return class_names[int(c)] if class_names is not None else str(int(c))

    for j in range(n):
        ax = axes[0, j]
        ax.imshow(images[j], interpolation="nearest")
        ax.set_title(f"true: {name(labels[j])}" if labels is not None else f"image {j + 1}", fontsize=7)
    for i, (label, heatmaps, predicted) in enumerate(rows, start=1):
        for j in range(n):
            ax = axes[i, j]
            ax.imshow(images[j], interpolation="nearest")
            ax.imshow(heatmaps[j], cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="bilinear")
            ax.set_title(f"pred: {name(predicted[j])}", fontsize=7)
        axes[i, 0].set_ylabel(label, fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("image", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
