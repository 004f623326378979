"""A larger learning rate for the batch-norm offsets (airbench's "bias scaler").

Jordan's airbench (2024) trains the BatchNorm biases (beta) of its CIFAR-10
network at 64 times the learning rate of every other weight, which cut its
epochs to 94% from 22 to 18 (cifar10-zoo, airbench_ablations). Why it can
help a batch-normalised network: a convolution's kernel that feeds batch norm
is scale-free, and weight decay keeps it small, so its effective step
lr / |w|^2 is large; beta is not scale-free and not decayed, and at the same
learning rate it moves far more slowly than the function the kernels compute.

For variable v with gradient g, the optimizer's own update runs with
`lr_v = lr * scale` for every beta and `lr` for the rest. For SGD with
momentum this is the same as scaling beta's gradient: Keras' buffer holds
`m <- mu * m - lr_v * g`, so the momentum carries the scaled step. The
schedule, the clipping and the weight average are unchanged. In airbench the
weight decay of beta is scaled down by the same factor; here beta is not
decayed at all (`kerascnn.training.optim`), so nothing is to scale.
"""

import re

import keras

# Keras names the offset of its normalisation layers (BatchNormalization,
# LayerNormalization, GroupNormalization) "beta", and so does
# kerascnn.layers.BatchNormalization, which keeps Keras' weights.
NORM_OFFSET = "beta"


def is_norm_offset(variable):
    """Whether `variable` is the offset (beta) of a normalisation layer.

    The TensorFlow backend hands `update_step` the backing `tf.Variable`,
    named by its path ("bn/beta:0"), not the Keras variable ("beta"), and
    under MirroredStrategy each replica's copy ("bn/beta/replica_1:0").
    """
    parts = variable.name.partition(":")[0].split("/")
    if len(parts) > 1 and re.fullmatch(r"replica_\d+", parts[-1]):
        parts.pop()
    return parts[-1] == NORM_OFFSET


def scale_norm_offsets(optimizer, scale):
    """`optimizer`, updating the normalisation offsets at `scale` times its learning rate.

    The instance's `update_step` is wrapped (as `fused_updates` wraps it), so the
    optimizer keeps its Keras class, configuration and slot variables: a saved
    optimizer loads anywhere, and `fit --resume` wraps the rebuilt one again.
    A scale of 1 returns the optimizer unchanged.
    """
    if scale == 1:
        return optimizer
    step = optimizer.update_step

    def scaled_update_step(gradient, variable, learning_rate):
        if is_norm_offset(variable):
            learning_rate = keras.ops.multiply(learning_rate, scale)
        return step(gradient, variable, learning_rate)

    optimizer.update_step = scaled_update_step
    return optimizer
