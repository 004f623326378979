"""Optimizers, learning-rate schedules and weight decay.

Weight decay, per optimizer:
- sgd, adam, rmsprop: the classic coupled decay of the AlexNet and VGG
  papers (and PyTorch's `weight_decay`): the gradient of every conv/dense
  kernel gets `+ weight_decay * w`, the gradient of the L2 penalty
  `weight_decay/2 * ||w||^2`. It is added in the optimizer's update step
  (`kerascnn.training.weight_decay`, wired in by `training.build`), not to
  the loss. With momentum this decay goes through the momentum buffer,
  exactly as in Krizhevsky et al. 2012, section 5: v <- 0.9 v - 0.0005 lr w - lr grad.
- adamw: decoupled decay (Loshchilov & Hutter 2019), `w <- w - lr * wd * w`
  applied by the optimizer, not through Adam's moments.
Biases and normalisation parameters are not decayed, unless
`--decay-norm-and-bias` gives them the same coupled decay.
"""

import keras

from kerascnn.errors import ConfigError
from kerascnn.training.averaging import warm_up_average
from kerascnn.training.fused_updates import fuse_updates
from kerascnn.training.norm_parameters import scale_norm_offsets


@keras.saving.register_keras_serializable(package="kerascnn")
class PiecewiseLinear(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate interpolated linearly between (step, value) points, constant outside them.

    The one-cycle shape of the fast CIFAR-10 recipes (Smith & Topin 2019;
    cifar10-fast's 0 -> 0.4 at epoch 5 -> 0 at epoch 24) is
    `PiecewiseLinear([0, warmup, total], [0, peak, 0])`: for step t,
    lr(t) = v_i + (v_{i+1} - v_i) * (t - s_i) / (s_{i+1} - s_i) on [s_i, s_{i+1}].

    Args:
        steps: increasing step numbers s_0 < s_1 < ... (at least two).
        values: the learning rate at each of them.
    """

    def __init__(self, steps, values):
        steps, values = [int(s) for s in steps], [float(v) for v in values]
        if len(steps) < 2 or len(steps) != len(values) or any(b <= a for a, b in zip(steps, steps[1:])):
            raise ConfigError(f"PiecewiseLinear needs increasing steps, one value each. Received: steps={steps}")
        self.steps, self.values = steps, values

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        lr = keras.ops.convert_to_tensor(self.values[0], "float32")
        for (s0, v0), (s1, v1) in zip(zip(self.steps, self.values), zip(self.steps[1:], self.values[1:])):
            fraction = keras.ops.clip((step - s0) / float(s1 - s0), 0.0, 1.0)
            lr = keras.ops.where(step >= s0, v0 + (v1 - v0) * fraction, lr)
        return lr

    def get_config(self):
        return {"steps": self.steps, "values": self.values}


def learning_rate(optim, steps_per_epoch, epochs):
    """The learning rate for `keras.optimizers.*`: a float or a schedule.

    - constant, plateau: `lr` (plateau lowers it from a callback).
    - step: `lr * lr_decay ** floor(epoch / step_epochs)`.
    - cosine: Loshchilov & Hutter 2017 without restarts, after a linear warm-up
      from i * lr over `warmup_epochs`: lr_t = lr * (f + (1 - f)/2 * (1 + cos(pi * t / T))),
      T the steps after warm-up, reaching f * lr at the last step (f =
      `final_lr_fraction`, Keras' `alpha`; i = `initial_lr_fraction`; both 0
      by default).
    - onecycle: linear from i * lr to `lr` over `warmup_epochs`, then linear to
      f * lr at the last step (`PiecewiseLinear`); without warm-up, linear from
      `lr` to f * lr. airbench94 (Jordan 2024) runs i = 0.2, f = 0.07.
    """
    if optim.warmup_epochs and optim.schedule not in ("cosine", "onecycle"):
        raise ConfigError(
            f"--warmup-epochs works with --schedule cosine or onecycle. Received: schedule={optim.schedule}"
        )
    if optim.schedule in ("constant", "plateau"):
        return float(optim.lr)
    if optim.schedule == "step":
        return keras.optimizers.schedules.ExponentialDecay(
            optim.lr,
            decay_steps=optim.step_epochs * steps_per_epoch,
            decay_rate=optim.lr_decay,
            staircase=True,
        )
    total = epochs * steps_per_epoch
    warmup = int(round(optim.warmup_epochs * steps_per_epoch))
    if warmup >= total:
        raise ConfigError(
            f"warm-up must be shorter than the run. Received: warmup_epochs={optim.warmup_epochs}, epochs={epochs}"
        )
    start, end = optim.lr * optim.initial_lr_fraction, optim.lr * optim.final_lr_fraction
    if optim.schedule == "onecycle":
        if warmup == 0:
            return PiecewiseLinear([0, total], [optim.lr, end])
        return PiecewiseLinear([0, warmup, total], [start, optim.lr, end])
    if warmup == 0:
        return keras.optimizers.schedules.CosineDecay(optim.lr, decay_steps=total, alpha=optim.final_lr_fraction)
    return keras.optimizers.schedules.CosineDecay(
        start, decay_steps=total - warmup, alpha=optim.final_lr_fraction, warmup_target=optim.lr, warmup_steps=warmup
    )


def build_optimizer(optim, steps_per_epoch, epochs):
    """A fresh Keras optimizer for `optim` (an `OptimConfig`), with one-kernel updates where they apply.

    `fused_updates.fuse_updates`: Adam, AdamW, SGD with momentum and RMSprop
    update each variable with one TensorFlow kernel, the same arithmetic as
    Keras' chain of ops.
    `norm_parameters.scale_norm_offsets`: the batch-norm offsets at
    `bn_bias_lr_scale` times the learning rate.
    `averaging.warm_up_average`: --ema's average warmed up over its first steps.
    """
    optimizer = warm_up_average(fuse_updates(_keras_optimizer(optim, steps_per_epoch, epochs)))
    return scale_norm_offsets(optimizer, optim.bn_bias_lr_scale)


def _keras_optimizer(optim, steps_per_epoch, epochs):
    lr = learning_rate(optim, steps_per_epoch, epochs)
    clip = {"global_clipnorm": optim.clip_norm} if optim.clip_norm else {}
    if optim.ema is not None:
        # Keras keeps the average in the optimizer (saved with its state, so a
        # resumed run continues it); training.averaging puts it into the model.
        clip.update(use_ema=True, ema_momentum=optim.ema)
    if optim.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=optim.momentum, nesterov=optim.nesterov, **clip)
    if optim.optimizer == "adam":
        return keras.optimizers.Adam(lr, **clip)
    if optim.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(lr, **clip)
    opt = keras.optimizers.AdamW(lr, weight_decay=optim.weight_decay, **clip)
    opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return opt


def coupled_weight_decay(optim):
    """The L2 factor to put on the model (0 for adamw, which decays itself)."""
    return 0.0 if optim.optimizer == "adamw" else optim.weight_decay
