"""The coupled weight decay, applied in the optimizer's update step: g <- g + wd_v * v.

The AlexNet and VGG papers (and PyTorch's `weight_decay`) decay each weight
through its gradient: Krizhevsky et al. 2012, section 5,

    v <- 0.9 v - 0.0005 lr w - lr grad,

i.e. the optimizer sees `grad + wd * w`, and with momentum the decay goes
through the momentum buffer. This is the gradient of an L2 penalty
`wd/2 * ||w||^2` added to the loss, which is how kerascnn applied it until
2026-12-07. On a CPU that penalty costs about six passes over every decayed
weight a step (a square and a sum forward; a broadcast, two products and an
addition backward): a seventh of alexnet_cifar's recipe step, whose head
holds 35 M weights. Adding `wd * w` to the gradient where the optimizer
updates the weight costs two passes: that step 1.09x faster, vgg16_bn's
1.03x, an epoch of `fit` 1.04x (benchmarks/NOTES.md, 97). It gives the same
sum to the last bit: TensorFlow's gradient of `(wd/2) * sum(w^2)` is
`(wd/2) * (2 * w)`, equal to `wd * w` exactly.

What is decayed (`decay_factors`):
- the kernel of every convolution and dense layer (any layer whose config has
  a `kernel_regularizer`, nested layers included), at `wd`;
- with `--decay-norm-and-bias`, as PyTorch's `weight_decay` and airbench
  (Jordan 2024) decay every trained weight: each bias and batch-norm scale
  (gamma) at `wd`, each batch-norm offset (beta) at `wd / S` where it learns at
  S = `bn_bias_lr_scale` times the rate, so its step `lr * S * (g + wd/S * beta)`
  shrinks it by `lr * wd` as every other weight (airbench's
  `weight_decay = wd / lr_biases`).
Only trainable weights are updated, so a frozen one (a frozen backbone, a
frozen batch-norm scale, the frozen whitening layer) is not decayed, and is
again once unfrozen.

Two consequences of the decay living in the optimizer: the `loss` a run
reports is the data term alone (label smoothing included, no penalty), and
with `--clip-norm` the clipped gradient is the data gradient, the decay added
after, as PyTorch's `clip_grad_norm_` clips `p.grad` before `step()` adds the
decay. AdamW's decoupled decay is Keras' own and is not this one.
"""

import keras

from kerascnn.errors import ConfigError
from kerascnn.training import update_step
from kerascnn.training.norm_parameters import NORM_OFFSET, update_path

NORM_SCALE = "gamma"


def _layers(model):
    # Nested layers too: --model-parallel's towers hold their convolutions inside blocks.
    return model._flatten_layers(include_self=False, recursive=True)


def decay_factors(model, weight_decay, norm_and_bias=False, offset_lr_scale=1.0):
    """{variable path: its decay factor} for `model`'s coupled decay; empty when `weight_decay` is 0.

    Raises ConfigError when `model` has nothing the decay can apply to.
    """
    if weight_decay == 0:
        return {}
    factors = {}
    for layer in _layers(model):
        config = layer.get_config()
        if "kernel_regularizer" in config and getattr(layer, "kernel", None) is not None:
            factors[layer.kernel.path] = weight_decay
        if not norm_and_bias:
            continue
        if "beta_regularizer" in config:  # batch norm (and the layer norms), Keras' names
            for name, factor in ((NORM_SCALE, weight_decay), (NORM_OFFSET, weight_decay / offset_lr_scale)):
                variable = getattr(layer, name, None)
                if variable is not None:
                    factors[variable.path] = factor
        elif "bias_regularizer" in config and getattr(layer, "bias", None) is not None:
            factors[layer.bias.path] = weight_decay
    if not factors:
        raise ConfigError(f"model {model.name} has no layer that weight decay can apply to")
    return factors


def variable_path(variable):
    """The Keras path of a variable as `update_step` receives it (a Keras variable on JAX, a tf.Variable on TensorFlow)."""
    path = getattr(variable, "path", None)
    return path if isinstance(path, str) else update_path(variable)


def decay_in_update(optimizer, factors):
    """`optimizer`, adding `factors[path] * v` to the gradient of each variable v it updates; returned.

    The instance's `update_step` is wrapped (`kerascnn.training.update_step`,
    as `norm_parameters` and `fused_updates` wrap it), so the optimizer keeps its Keras class,
    configuration and slot variables, and `fit --resume` wraps the rebuilt one
    again. The factors stay on the optimizer as `decay_factors` (read by
    `factors_of`). Without factors, `optimizer` unchanged.
    """
    if not factors:
        return optimizer
    factors = dict(factors)

    def decaying(step):
        def decayed_update_step(gradient, variable, learning_rate):
            factor = factors.get(variable_path(variable))
            if factor is not None:
                gradient = keras.ops.add(gradient, keras.ops.multiply(variable, keras.ops.cast(factor, gradient.dtype)))
            return step(gradient, variable, learning_rate)

        return decayed_update_step

    update_step.wrap(optimizer, decaying)
    optimizer.decay_factors = factors
    return optimizer


def factors_of(optimizer):
    """The {path: factor} map `decay_in_update` gave `optimizer` (inside a LossScaleOptimizer too), or {}."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return dict(getattr(inner, "decay_factors", {}))
