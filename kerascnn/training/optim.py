"""Optimizers, learning-rate schedules and weight decay.

Weight decay, per optimizer:
- sgd, adam, rmsprop: the classic coupled L2 penalty of the AlexNet and VGG
  papers (and PyTorch's `weight_decay`): the gradient of every conv/dense
  kernel gets `+ weight_decay * w`. It is added as an L2 kernel regulariser
  with factor `weight_decay / 2`, since d/dw (wd/2 * ||w||^2) = wd * w. With
  momentum this decay goes through the momentum buffer, exactly as in
  Krizhevsky et al. 2012, section 5: v <- 0.9 v - 0.0005 lr w - lr grad.
- adamw: decoupled decay (Loshchilov & Hutter 2019), `w <- w - lr * wd * w`
  applied by the optimizer, not through Adam's moments.
Biases and normalisation parameters are not decayed.
"""

import keras

from kerascnn.errors import ConfigError


def with_l2_penalty(model, weight_decay):
    """A copy of `model` whose kernels carry an L2 penalty giving `+wd * w` gradients.

    The penalty is attached through the model's config (every layer that has
    a `kernel_regularizer` setting), so builders need not know about it.
    """
    if weight_decay == 0:
        return model
    config = model.get_config()
    regularizer = keras.regularizers.serialize(keras.regularizers.L2(weight_decay / 2.0))
    touched = 0
    for layer in config["layers"]:
        if "kernel_regularizer" in layer["config"]:
            layer["config"]["kernel_regularizer"] = regularizer
            touched += 1
    if touched == 0:
        raise ConfigError(f"model {model.name} has no layer that weight decay can apply to")
    return model.__class__.from_config(config)


def learning_rate(optim, steps_per_epoch, epochs):
    """The learning rate for `keras.optimizers.*`: a float or a schedule.

    - constant, plateau: `lr` (plateau lowers it from a callback).
    - step: `lr * lr_decay ** floor(epoch / step_epochs)`.
    - cosine: Loshchilov & Hutter 2017 without restarts, after a linear warm-up
      from 0 over `warmup_epochs`: lr_t = lr/2 * (1 + cos(pi * t / T)), T the
      steps after warm-up, reaching 0 at the last step.
    """
    if optim.warmup_epochs and optim.schedule != "cosine":
        raise ConfigError(
            f"--warmup-epochs works with --schedule cosine. Received: schedule={optim.schedule}"
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
    if warmup == 0:
        return keras.optimizers.schedules.CosineDecay(optim.lr, decay_steps=total)
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=total - warmup, warmup_target=optim.lr, warmup_steps=warmup
    )


def build_optimizer(optim, steps_per_epoch, epochs):
    """A fresh Keras optimizer for `optim` (an `OptimConfig`)."""
    lr = learning_rate(optim, steps_per_epoch, epochs)
    clip = {"global_clipnorm": optim.clip_norm} if optim.clip_norm else {}
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
