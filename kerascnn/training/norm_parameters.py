"""How the batch-norm parameters train: offsets at a larger learning rate, scales frozen.

Two treatments of Jordan's airbench (2024), whose CIFAR-10 network trains
its BatchNorm layers with `weight=False` (the scale gamma fixed at 1) and its
BatchNorm biases (the offset beta) at 64 times the learning rate of every
other weight (the "bias scaler"; cifar10-zoo's airbench_ablations measured
the scaler cutting the epochs to 94% from 22 to 18).

Why they can help a batch-normalised network: a convolution's kernel that
feeds batch norm is scale-free, and weight decay keeps it small, so its
effective step lr / |w|^2 is large; beta is not scale-free and not decayed,
and at the same learning rate it moves far more slowly than the function the
kernels compute. gamma, a positive per-channel scale before a ReLU, only
sets how much each channel weighs in the next layer, which that layer's own
weights can also set; airbench fixes it at 1 and trains one vector less.

`--bn-bias-lr-scale S`: for variable v with gradient g, the optimizer's own
update runs with `lr_v = lr * S` for every beta and `lr` for the rest. For SGD
with momentum this is the same as scaling beta's gradient: Keras' buffer
holds `m <- mu * m - lr_v * g`, so the momentum carries the scaled step. The
schedule, the clipping and the weight average are unchanged. airbench scales
beta's weight decay down by the same factor; here beta is decayed only with
`--decay-norm-and-bias`, whose coefficient for it is divided by S
(`kerascnn.training.weight_decay`).

`--freeze-bn-scale`: every batch-norm layer's gamma is made non-trainable
before the optimizer is built, so it gets no gradient and no slots; it stays
at 1 and is saved with the weights as before. It does not combine with a
ResNet's `zero_init_residual`, whose zero scales would stay zero and leave
every residual branch constant, nor with `--freeze-backbone`, whose
unfreezing makes every variable of the backbone trainable again (`RunConfig`
refuses both pairs).
"""

import re

import keras

from kerascnn.training import update_step

# Keras names the offset of its normalisation layers (BatchNormalization,
# LayerNormalization, GroupNormalization) "beta", and so does
# kerascnn.layers.BatchNormalization, which keeps Keras' weights.
NORM_OFFSET = "beta"


def update_path(variable):
    """The Keras path ("bn/beta") of a variable as an optimizer's `update_step` receives it.

    The TensorFlow backend hands `update_step` the backing `tf.Variable`,
    named by its path ("bn/beta:0"), not the Keras variable ("beta"), and
    under MirroredStrategy each replica's copy ("bn/beta/replica_1:0").
    """
    parts = variable.name.partition(":")[0].split("/")
    if len(parts) > 1 and re.fullmatch(r"replica_\d+", parts[-1]):
        parts.pop()
    return "/".join(parts)


def is_norm_offset(variable):
    """Whether `variable` (as `update_step` receives it) is the offset (beta) of a normalisation layer."""
    return update_path(variable).rpartition("/")[2] == NORM_OFFSET


def scale_norm_offsets(optimizer, scale):
    """`optimizer`, updating the normalisation offsets at `scale` times its learning rate (`--bn-bias-lr-scale`).

    The instance's `update_step` is wrapped (`kerascnn.training.update_step`), so the
    optimizer keeps its Keras class, configuration and slot variables: a saved
    optimizer loads anywhere, and `fit --resume` wraps the rebuilt one again.
    A scale of 1 returns the optimizer unchanged.
    """
    if scale == 1:
        return optimizer

    def scaling(step):
        def scaled_update_step(gradient, variable, learning_rate):
            if is_norm_offset(variable):
                learning_rate = keras.ops.multiply(learning_rate, scale)
            return step(gradient, variable, learning_rate)

        return scaled_update_step

    update_step.wrap(optimizer, scaling)
    return optimizer


def freeze_norm_scales(network):
    """Make the scale (gamma) of every batch-norm layer of `network` non-trainable; the count frozen.

    Call before the optimizer is built (as `--whiten` freezes its layer).
    """
    frozen = 0
    for layer in _all_layers(network):
        if isinstance(layer, keras.layers.BatchNormalization) and layer.scale:
            layer.gamma.trainable = False
            frozen += 1
    return frozen


def _all_layers(model):
    """Every layer of `model`, those of nested models (a transfer backbone) included."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
