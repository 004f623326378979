"""Extending a run's budget: `fit --resume RUN_DIR --epochs N`, N above the saved epochs.

A run may be trained further, finished or not. Its weights, optimizer state
(momentum, the step count, the weight average) and data order continue from
the backup of its last completed epoch; what the learning rate does over the
added epochs depends on the schedule:

- constant, plateau: the rate continues as it was (plateau keeps the
  reductions it made; they are part of the optimizer state).
- step: the staircase continues, `lr * lr_decay ** floor(epoch / step_epochs)`
  over the whole run, as it would have without a budget.
- cosine, onecycle: these end with the budget (at 0, or at
  `final_lr_fraction` of the peak), so each extension adds
  one new segment of the same shape over the added epochs, its warm-up
  scaled with it: `warmup_epochs * added / first budget` (the recipe's
  warm-up fraction). For cosine this is SGDR's warm restart (Loshchilov &
  Hutter 2017, eq. 5, restarting at the peak `lr`, T_i = the added epochs):
  eta_t = lr/2 * (1 + cos(pi * T_cur / T_i)); for onecycle a new one-cycle
  initial_lr_fraction * lr -> lr -> final_lr_fraction * lr over the added epochs.

config.json keeps the budget the run started with and every extension in
`RunConfig.extensions`, so the schedule of an extended run, and its replay,
can be rebuilt from the file alone.
"""

import dataclasses
import datetime

import keras

from kerascnn.training.optim import learning_rate

# Schedules that end at 0 with the budget, and so restart over each extension.
SEGMENTED = ("cosine", "onecycle")


@keras.saving.register_keras_serializable(package="kerascnn")
class Segments(keras.optimizers.schedules.LearningRateSchedule):
    """Learning-rate schedules one after the other, each on its own step count.

    For step t, lr(t) = schedule_i(t - s_i) for the last segment i with
    s_i <= t (s_0 = 0): the first segment is the run's own schedule over its
    first budget, each later one the schedule of one extension.

    Args:
        starts: the first step of each segment, increasing from 0.
        schedules: a `LearningRateSchedule` (or a float) for each.
    """

    def __init__(self, starts, schedules):
        starts = [int(s) for s in starts]
        if not starts or starts[0] != 0 or len(starts) != len(schedules) or any(b <= a for a, b in zip(starts, starts[1:])):
            raise ValueError(f"Segments needs increasing starts from 0, one schedule each. Received: starts={starts}")
        self.starts = starts
        self.schedules = [
            keras.optimizers.schedules.deserialize(s) if isinstance(s, dict) else s for s in schedules
        ]

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        lr = None
        for start, schedule in zip(self.starts, self.schedules):
            local = keras.ops.maximum(step - float(start), 0.0)
            value = schedule(local) if callable(schedule) else schedule
            value = keras.ops.cast(value, "float32")
            lr = value if lr is None else keras.ops.where(step >= start, value, lr)
        return lr

    def get_config(self):
        return {
            "starts": self.starts,
            "schedules": [
                keras.optimizers.schedules.serialize(s) if callable(s) else float(s) for s in self.schedules
            ],
        }


def budgets(config):
    """[(first epoch, end epoch)] of each schedule segment of `config`: the first budget, then each extension."""
    ends = [config.first_budget] + [e["to_epochs"] for e in config.extensions]
    return list(zip([0] + ends[:-1], ends))


def segment_optim(optim, added, first_budget):
    """The `OptimConfig` of an extension's segment: the warm-up scaled to the added epochs."""
    return dataclasses.replace(optim, warmup_epochs=optim.warmup_epochs * added / first_budget)


def run_learning_rate(optim, steps_per_epoch, config):
    """The learning rate of the run `config` with the (scaled) `optim`: its schedule, then one segment per extension.

    Without extensions, or for a schedule that does not end with the budget,
    this is `kerascnn.training.optim.learning_rate` over `config.epochs`.
    """
    if not config.extensions or optim.schedule not in SEGMENTED:
        return learning_rate(optim, steps_per_epoch, config.epochs)
    first = config.first_budget
    starts, schedules = [], []
    for start, end in budgets(config):
        segment = optim if start == 0 else segment_optim(optim, end - start, first)
        starts.append(start * steps_per_epoch)
        schedules.append(learning_rate(segment, steps_per_epoch, end - start))
    return Segments(starts, schedules)


def describe_continuation(optim, start, end, first_budget, lr=None):
    """One line for config.json and the log: what the learning rate does over epochs start+1..end."""
    lr = optim.lr if lr is None else lr
    span = f"epochs {start + 1}-{end}"
    if optim.schedule == "constant":
        return f"constant: lr {lr:g} continues over {span}"
    if optim.schedule == "plateau":
        return f"plateau: the rate continues as reduced so far, still lowered on plateaus, over {span}"
    if optim.schedule == "step":
        return (f"step: the staircase lr x {optim.lr_decay:g} every {optim.step_epochs} epochs continues "
                f"over {span}")
    warmup = segment_optim(optim, end - start, first_budget).warmup_epochs
    up = f"warm-up {lr * optim.initial_lr_fraction:g} -> {lr:g} over {warmup:g} epochs, then " if warmup else ""
    shape = "cosine (SGDR warm restart)" if optim.schedule == "cosine" else "one-cycle"
    return f"a new {shape} segment over {span}: {up}{lr:g} -> {lr * optim.final_lr_fraction:g}"


def extended(config, epochs, previous_metrics=None, lr=None):
    """`config` (a saved RunConfig) with its budget raised to `epochs` and the extension recorded.

    Args:
        config: the run's RunConfig as config.json holds it.
        epochs: the new budget, above `config.epochs`.
        previous_metrics: metrics.json of the run when it had finished (its
            test accuracy and epochs are kept in the record), else None.
        lr: the learning rate trained with (after --scale-lr), for the description.
    """
    record = {
        "from_epochs": config.epochs,
        "to_epochs": int(epochs),
        "schedule": describe_continuation(config.optim, config.epochs, epochs, config.first_budget, lr),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "finished_before": previous_metrics is not None,
    }
    if previous_metrics is not None:
        record["previous_test_accuracy"] = previous_metrics.get("test_accuracy")
        record["previous_epochs_run"] = previous_metrics.get("epochs_run")
    return config.replace(epochs=int(epochs), extensions=(*config.extensions, record))
