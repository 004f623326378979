"""Weight averaging (`--ema DECAY`): the averaged weights are the model everyone sees.

Polyak & Juditsky (1992) averaging in its exponential form, as the fast
CIFAR-10 recipes use it (Page's cifar10-fast, Jordan's airbench): after every
optimizer step

    avg <- decay * avg + (1 - decay) * w        (avg = w at the first step)

Keras' optimizers keep `avg` themselves (`use_ema=True`, `ema_momentum=decay`;
see `kerascnn.training.optim.build_optimizer`), and `Model.fit` copies it into
the weights when training ends. Keras' decay is the same from the second step
on, so after n steps the first weights still weigh decay^n: 68% after
resnet20's first epoch at 0.999 (390 steps). `warm_up_average` gives it the
warm-up of TensorFlow's `tf.train.ExponentialMovingAverage(num_updates=t)`,

    decay_t = min(decay, (1 + t) / (10 + t))       (t = steps before this one)

so the average spans about the steps taken until it reaches `1 / (1 - decay)` of them.

`AveragedWeights` makes every epoch end the same: from the end of an epoch to the start of the next, and during
validation, the model holds the averaged weights, so validation, best.keras,
a per-epoch test (benchmarks/time_to_accuracy.py) and the final test and
export all see the average, while the optimizer steps the raw weights.

Why not `keras.callbacks.SwapEMAWeights(swap_on_epoch=True)`: it swaps the
average and the raw weights in place and copies the average back only after
the last scheduled epoch, so a run that stops early (patience, a non-finite
loss) leaves the raw weights in the optimizer's average and `fit` then ends
with the raw weights. Here the optimizer's average is never touched; the raw
weights are set aside in host memory while the average is in the model.

Batch-norm statistics are not averaged (Keras averages trainable variables
only), and the raw weights' moving statistics do not fit the average: tested
with them, resnet20's average at decay 0.999 scored 78.25% against 86.75%
without it after 20 one-cycle epochs (docs/results.md#ema-resnet20). So
whenever the average goes into the model, its statistics are recomputed from
`STATISTICS_IMAGES` training images in training mode, as SWA does
(`kerascnn.training.batch_norm_statistics`), and the raw weights' statistics
are set aside and put back with the raw weights. The pass runs once per
optimizer step count: validation, the epoch's end and the backup share it.
With them the same average scored 86.69%, level with the raw weights after
the one-cycle schedule's last steps and 1-10 points ahead of them while the
rate was high (epochs 4-19 of 20; docs/results.md#ema-statistics-resnet20).
"""

import contextlib
import math

import keras

from kerascnn.training.batch_norm_statistics import StatisticsPass, moving_statistics, set_moving_statistics

# Images of the training stream whose batch statistics give the average's:
# 32 batches of 128, a 12th of CIFAR-10's training set, a forward pass of a
# few seconds at each epoch's end on a 2-core CPU.
STATISTICS_IMAGES = 4096


def optimizer_with_average(model):
    """The (inner) optimizer of `model` that keeps a weight average, or None."""
    optimizer = getattr(model, "optimizer", None)
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's
    if optimizer is None or not getattr(optimizer, "use_ema", False):
        return None
    return optimizer


def warm_up_average(optimizer):
    """`optimizer`, its weight average (if any) warmed up as `tf.train.ExponentialMovingAverage` does (module docstring).

    The instance's `_update_model_variables_moving_average`, which Keras calls
    after each step's update and before counting the step, is replaced: the
    first step still copies the weights (Keras' rule), later ones use decay_t.
    """
    if not getattr(optimizer, "use_ema", False):
        return optimizer
    ops = keras.ops

    def update_average(trainable_variables):
        t = ops.cast(optimizer.iterations, "float32")
        decay = ops.minimum(ops.cast(optimizer.ema_momentum, "float32"), (1.0 + t) / (10.0 + t))
        decay = decay * ops.cast(ops.not_equal(optimizer.iterations, 0), "float32")
        for var, average in zip(trainable_variables, optimizer._model_variables_moving_average):
            if average is not None:
                d = ops.cast(decay, var.dtype)
                average.assign(ops.add(ops.multiply(d, average), ops.multiply(ops.subtract(1, d), var)))

    optimizer._update_model_variables_moving_average = update_average
    return optimizer


class AveragedWeights(keras.callbacks.Callback):
    """Holds the optimizer's weight average in the model between epochs and during validation.

    Place it before the checkpoint and any callback that evaluates the
    model at the end of an epoch. The backup, which must save the raw
    weights (a resumed run steps on from them), comes after everything and
    takes them back for its write with `raw_weights()`.

    Args:
        statistics_batches: training batches (`(inputs, targets, ...)`) from
            which the average's batch-norm statistics are recomputed; None
            leaves the raw weights' statistics in place.
        batch_size: the global batch of `statistics_batches`, which sets how
            many of them make `STATISTICS_IMAGES` images.
    """

    def __init__(self, statistics_batches=None, batch_size=None):
        super().__init__()
        self._raw = None  # the raw weights while the average is in the model
        self._raw_statistics = None  # and the raw weights' batch-norm statistics
        self._for_validation = False  # put in by on_test_begin, so on_test_end takes it out
        self._statistics_batches = statistics_batches
        self._statistics_steps = math.ceil(STATISTICS_IMAGES / batch_size) if batch_size else 0
        self._pass = None
        self._average_statistics = None  # (optimizer step, statistics) of the last pass

    def _pairs(self):
        optimizer = optimizer_with_average(self.model)
        if optimizer is None or not hasattr(optimizer, "_model_variables_moving_average"):
            return []
        return list(zip(optimizer._trainable_variables, optimizer._model_variables_moving_average))

    def _statistics_pass(self):
        if self._statistics_batches is None or optimizer_with_average(self.model) is None:
            return None
        if self._pass is None:
            self._pass = StatisticsPass(self.model, self._statistics_batches, self._statistics_steps)
        return self._pass

    def _recompute_statistics(self):
        """The average's batch-norm statistics into the model: computed once per optimizer step."""
        statistics = self._statistics_pass()
        if statistics is None:
            return
        layers = statistics.layers
        key = (int(keras.ops.convert_to_numpy(optimizer_with_average(self.model).iterations)), tuple(map(id, layers)))
        if self._average_statistics is not None and self._average_statistics[0] == key:
            set_moving_statistics(layers, self._average_statistics[1])
            return
        statistics()
        self._average_statistics = (key, moving_statistics(layers))

    def _average_in(self):
        if self._raw is not None:
            return
        pairs = self._pairs()
        self._raw = [keras.ops.convert_to_numpy(var) for var, _ in pairs]
        statistics = self._statistics_pass()
        if statistics is not None:
            layers = statistics.layers
            self._raw_statistics = (layers, moving_statistics(layers))
        for var, average in pairs:
            var.assign(average)
        self._recompute_statistics()

    def _raw_back(self):
        if self._raw is None:
            return
        for (var, _), raw in zip(self._pairs(), self._raw):
            var.assign(raw)
        if self._raw_statistics is not None:
            set_moving_statistics(*self._raw_statistics)
        self._raw = self._raw_statistics = None

    @property
    def holds_average(self):
        """Whether the model holds the average now (between epochs), the raw weights set aside."""
        return self._raw is not None

    @contextlib.contextmanager
    def raw_weights(self):
        """The raw weights in the model for the duration of the block (the average again after it)."""
        holding_average = self._raw is not None
        self._raw_back()
        try:
            yield
        finally:
            if holding_average:
                self._average_in()

    @contextlib.contextmanager
    def average_weights(self):
        """The average in the model (with its batch-norm statistics) for the block, as between epochs.

        For a callback that tests the model outside an epoch's end: a resumed run's model holds
        the raw weights its backup kept until the first epoch it trains ends.
        """
        holding_average = self._raw is not None
        self._average_in()
        try:
            yield
        finally:
            if not holding_average:
                self._raw_back()

    def on_test_begin(self, logs=None):
        if self._raw is None:
            self._average_in()
            self._for_validation = True

    def on_test_end(self, logs=None):
        # Validation inside an epoch: the raw weights go back for the rest of
        # it; on_epoch_end puts the average in again.
        if self._for_validation:
            self._raw_back()
            self._for_validation = False

    def on_epoch_end(self, epoch, logs=None):
        self._average_in()

    def on_epoch_begin(self, epoch, logs=None):
        self._raw_back()

    def on_train_end(self, logs=None):
        # `fit` has already copied the average into the weights; the raw
        # weights set aside are not wanted any more. A fit that ran no epoch
        # (a resumed run whose backup held its last one) put the average in
        # only now: it gets its statistics here.
        self._raw = self._raw_statistics = None
        self._recompute_statistics()
