"""First-layer patch whitening (`--whiten`): the first convolution starts as a fixed whitening of image patches.

The fast CIFAR-10 trainers (Jordan 2024, airbench, "94% on CIFAR-10 in 3.29
seconds", section "whitening initialization", after tysam-code's
hlb-CIFAR10) set the first convolution from the training images and never
train it: its outputs are decorrelated, unit-variance components of the
image patches from the first step on, one of their largest single gains in
a few epochs. For a first convolution with a k_h x k_w kernel over C = 3
channels, d = k_h * k_w * C:

    p        every k_h x k_w x C patch (stride 1, no padding) of N training
             images, unaugmented, normalised as the run normalises them
             (`kerascnn.data.preprocessing.Preprocessing`), flattened to R^d
    mu       = mean(p)
    Sigma    = mean((p - mu)(p - mu)^T) = V diag(lambda) V^T,  lambda_1 >= ... >= lambda_d
    w_i      = v_i / sqrt(lambda_i + eps),  i = 1..d
    filters  [w_1, ..., w_d, -w_1, ..., -w_d]  -> output channels 0..2d-1

so that W^T Sigma W = diag(lambda_i / (lambda_i + eps)), the identity but for
the directions whose variance is about eps or less: the first d channels are
the whitened patch components, the next d their negatives, so that the ReLU
after the layer passes both signs of every component. The layer needs at
least 2d filters (54 for a 3x3 kernel); the others keep their random
initialisation, the bias (if any) is zero, and the whole layer (kernel and
bias) is frozen: not trained and, since Keras regularises trainable weights
only, not weight-decayed. With `--whiten-bias-epochs N` the bias trains
(at the learning rate of every weight, decayed only with
`--decay-norm-and-bias`, as airbench decays it) for the first N epochs
and is then frozen, as airbench trains it for 3: where no batch norm follows
the layer (airbench94's GELU takes its outputs directly) the bias is the only
shift before the non-linearity. The gate is the optimizer's step count, so a
resumed run keeps it; past it the bias gets no update at all, no momentum
tail (PyTorch's `requires_grad = False`, which airbench sets). Lookahead,
which pulls every weight to its slow average, moves it once more at its
next synchronisation and then leaves it, as airbench's does.

The covariance is centred; after the run's per-channel normalisation mu is
close to 0, so this is nearly airbench's uncentred second moment, and
centring is what makes the responses' covariance the identity.

A resumed run does not recompute anything: its backup holds the layer's
weights; it only freezes the layer again before the optimizer is built, so
the optimizer's state matches the backup's.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from kerascnn.data.pipeline import read_guard, split_indices
from kerascnn.errors import ConfigError
from kerascnn.training import update_step
from kerascnn.training.norm_parameters import update_path

# Added to every eigenvalue before the inverse square root. The inputs are
# normalised to unit variance per channel, so the eigenvalues sum to about d
# (27 for 3x3 patches) and most are far above 5e-4; the smallest (fine colour
# detail, near-duplicate pixels) can be close to 0, and 1/sqrt(lambda) would
# then multiply noise by hundreds. eps caps the gain at 1/sqrt(eps), about 45.
EPS = 5e-4
# airbench whitens from 5,000 training images. Larger images contribute as
# many pixels (102 images at 224x224): the covariance of a few dozen numbers
# is well estimated from millions of patches, and 5,000 large images would
# take minutes.
SAMPLE_IMAGES = 5000
SAMPLE_PIXELS = SAMPLE_IMAGES * 32 * 32
# Images per covariance update: 250 CIFAR images are 225,000 patches, a few MB.
CHUNK_PIXELS = 250 * 32 * 32


def first_convolution(network):
    """The Conv2D that the images enter first, checked to take 3 channels; ConfigError otherwise.

    Zero padding before it is allowed: it is the convolution's own padding
    written as a layer, and changes nothing inside the image.
    """
    layers = [layer for layer in network.layers if not isinstance(layer, keras.layers.InputLayer)]
    while layers and isinstance(layers[0], keras.layers.ZeroPadding2D):
        layers = layers[1:]
    first = layers[0] if layers else None
    if not isinstance(first, keras.layers.Conv2D):
        what = f"{first.name} ({type(first).__name__})" if first is not None else "nothing"
        raise ConfigError(
            f"--whiten sets the first convolution from image patches, but the first layer of {network.name} "
            f"is {what}, not a convolution; drop --whiten for this model"
        )
    channels = first.kernel.shape[2]
    if first.data_format != "channels_last" or first.groups != 1 or channels != 3:
        raise ConfigError(
            f"--whiten needs a first convolution over the 3 colour channels; {first.name} of {network.name} "
            f"takes {channels * first.groups} channels in {first.groups} group(s); drop --whiten for this model"
        )
    return first


def required_filters(layer):
    """2d: a whitening filter and its negative for each of the d = k_h * k_w * C patch dimensions."""
    return 2 * int(np.prod(layer.kernel.shape[:3]))


def check_filters(layer, network):
    """ConfigError unless `layer` has the 2d filters the whitening fills."""
    needed, filters = required_filters(layer), layer.kernel.shape[3]
    if filters < needed:
        kh, kw, c = layer.kernel.shape[:3]
        raise ConfigError(
            f"--whiten needs {needed} filters in {layer.name} of {network.name} (its {kh}x{kw}x{c} patches have "
            f"{needed // 2} dimensions, each whitened with both signs), and it has {filters}; drop --whiten, "
            "or use a model whose first convolution has more filters"
        )


def patch_covariance(batches, kernel_size, dilation=(1, 1)):
    """(mean, covariance, patch count) of the k_h x k_w patches of `batches` of [B, H, W, C] float images.

    Accumulated over the batches in float64, so the sample need not fit in
    memory at once. A patch is flattened in (row, column, channel) order, the
    order of a Keras kernel [k_h, k_w, C, filters] reshaped to [d, filters].
    """
    total, outer, count = 0.0, 0.0, 0
    for images in batches:
        patches = tf.image.extract_patches(
            tf.convert_to_tensor(images, tf.float32),
            sizes=[1, *kernel_size, 1], strides=[1, 1, 1, 1], rates=[1, *dilation, 1], padding="VALID",
        )
        p = patches.numpy().reshape(-1, patches.shape[-1]).astype(np.float64)
        total = total + p.sum(axis=0)
        outer = outer + p.T @ p
        count += len(p)
    if count == 0:
        raise ConfigError(f"--whiten found no {kernel_size[0]}x{kernel_size[1]} patch in the training images")
    mean = total / count
    return mean, outer / count - np.outer(mean, mean), count


def whitening_filters(covariance, eps=EPS):
    """(filters [d, 2d], eigenvalues descending): [V diag(1/sqrt(lambda + eps)), its negative]."""
    eigenvalues, vectors = np.linalg.eigh(covariance)  # ascending
    eigenvalues, vectors = eigenvalues[::-1], vectors[:, ::-1]
    # Rounding can leave a tiny negative eigenvalue of a singular covariance; it is 0.
    scaled = vectors / np.sqrt(np.maximum(eigenvalues, 0.0) + eps)
    return np.concatenate([scaled, -scaled], axis=1), eigenvalues


def whiten_layer(layer, batches, eps=EPS):
    """Put the whitening filters of `batches` into the first 2d output channels of `layer`; a summary dict.

    The remaining filters keep their values; the bias, if any, becomes 0.
    """
    kernel = np.array(layer.kernel.numpy())
    kh, kw, c, _ = kernel.shape
    _, covariance, count = patch_covariance(batches, (kh, kw), layer.dilation_rate)
    filters, eigenvalues = whitening_filters(covariance, eps)
    kernel[..., : filters.shape[1]] = filters.reshape(kh, kw, c, -1)
    layer.kernel.assign(kernel)
    if layer.use_bias:
        layer.bias.assign(np.zeros(layer.bias.shape, np.float32))
    return {
        "filters": filters.shape[1], "patches": count, "eigenvalues": (float(eigenvalues[0]), float(eigenvalues[-1])),
    }


def sample_batches(source, data_config, preprocessing, seed):
    """A seeded sample of the run's training images (not its validation images), normalised, in chunks.

    The images are those the run trains on (`split_indices` with the run's
    seed), unaugmented, through the run's `Preprocessing`; about
    `SAMPLE_PIXELS` pixels of them (5,000 images at 32x32).
    """
    train_idx, _ = split_indices(source.info.num_train, data_config.val_split, data_config.limit_train, seed)
    height, width = preprocessing.image_size
    count = min(len(train_idx), max(1, SAMPLE_PIXELS // (int(height) * int(width))))
    chosen = np.sort(np.random.default_rng(seed).choice(train_idx, size=count, replace=False))
    chunk = max(1, CHUNK_PIXELS // (int(height) * int(width)))
    dataset = source.train_examples(chosen).batch(chunk).map(lambda x, y: preprocessing(x))
    # A generator: read_guard turns a read failure of the source into its one-line DataError.
    iterator = iter(dataset)
    while True:
        batch = read_guard(source, next, iterator, None)
        if batch is None:
            return
        yield batch


@dataclasses.dataclass
class Whitening:
    """`--whiten` for one model build: whiten the first convolution (a new run) and freeze it.

    Attributes:
        batches: a function returning the normalised training images as an
            iterable of batches; None for a resumed run (its backup holds the
            whitened weights), which only freezes the layer.
        eps: see `EPS`.
        bias_epochs: epochs the layer's bias trains before it is frozen
            (`--whiten-bias-epochs`); 0 freezes it from the start.
        text: what `apply` did, a line for the run's log.
    """

    batches: object = None
    eps: float = EPS
    bias_epochs: int = 0
    text: str = None

    def apply(self, network):
        """Whiten (when there are images) and freeze the first convolution of `network`.

        Call before the optimizer is built: a frozen layer's weights then get
        no optimizer slots, no gradient and no weight-decay term.
        """
        layer = first_convolution(network)
        check_filters(layer, network)
        if self.bias_epochs and not layer.use_bias:
            raise ConfigError(
                f"--whiten-bias-epochs trains the bias of {layer.name} of {network.name}, which has none; "
                "drop --whiten-bias-epochs for this model"
            )
        if self.batches is None:
            text = f"{layer.name} stays frozen, its whitening restored with the run's weights"
        else:
            done = whiten_layer(layer, self.batches(), self.eps)
            top, bottom = done["eigenvalues"]
            text = (
                f"{layer.name}'s first {done['filters']} of {layer.filters} filters whiten the patches of the "
                f"training images ({done['patches']:,} patches, eigenvalues {top:.3g} to {bottom:.3g}, "
                f"eps {self.eps:g}); {layer.name} frozen"
            )
        if self.bias_epochs:
            layer.kernel.trainable = False  # the layer stays trainable: its bias trains until `gate_bias` stops it
            text += f", but for its bias, trained for the first {self.bias_epochs} epochs"
        else:
            layer.trainable = False
        self.text = f"--whiten: {text}"

    def gate_bias(self, optimizer, network, steps_per_epoch):
        """`optimizer`, updating the whitening layer's bias only in its first `bias_epochs` epochs.

        Call after `apply`, once the optimizer is built from its config. The
        instance's `update_step` is wrapped (`kerascnn.training.update_step`):
        from step `bias_epochs * steps_per_epoch` on, the bias's update (its
        momentum included) is skipped. Without `bias_epochs`, `optimizer` unchanged.
        """
        if not self.bias_epochs:
            return optimizer
        path, limit = first_convolution(network).bias.path, int(self.bias_epochs * steps_per_epoch)

        def gating(step):
            def gated_update_step(gradient, variable, learning_rate):
                if update_path(variable) != path:
                    return step(gradient, variable, learning_rate)

                def update():
                    step(gradient, variable, learning_rate)
                    return tf.constant(True)

                return tf.cond(optimizer.iterations < limit, update, lambda: tf.constant(False))

            return gated_update_step

        return update_step.wrap(optimizer, gating)


def whitening_for(plan, data):
    """The `Whitening` of a run, or None without --whiten."""
    config = plan.config
    if not config.whiten:
        return None
    if plan.resumed:
        return Whitening(bias_epochs=config.whiten_bias_epochs)
    source, preprocessing = data.source, data.datasets.preprocessing
    return Whitening(
        lambda: sample_batches(source, config.data, preprocessing, config.seed), bias_epochs=config.whiten_bias_epochs
    )
