"""Two-phase fine-tuning: `--freeze-backbone E` then all layers at `--finetune-lr`.

The usual transfer recipe (Yosinski et al. 2014; the Keras transfer learning
guide): for the first E epochs only the new layers (those not loaded from
the weights, or the classifier when everything was loaded) train, so their
random initial gradients cannot wreck the pretrained features; then every
layer trains at a lower learning rate (default a tenth of --lr).

Frozen batch normalisation runs in inference mode: Keras 3's
BatchNormalization normalises with its moving statistics and leaves them
alone when `trainable=False`, even in a training step.

Everything follows from the epoch number, so a resumed run (`--resume`,
which restores weights, optimizer state and step count from the backup)
lands in the right phase:
- the layers' trainable flags are set at the start of every epoch;
- step and cosine schedules are wrapped by `PhasedSchedule`, a function of
  the optimizer's step count: the schedule times finetune_lr / lr from step
  E x steps_per_epoch on;
- constant and plateau learning rates are a variable the backup restores,
  multiplied once by finetune_lr / lr when epoch E begins.
"""

import keras

from kerascnn.weights.transfer import is_classifier


class PhasedSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`base(step)` before `boundary` steps, `base(step) * ratio` from then on."""

    def __init__(self, base, boundary, ratio):
        self.base = base
        self.boundary = int(boundary)
        self.ratio = float(ratio)

    def __call__(self, step):
        lr = self.base(step)
        scale = keras.ops.where(step < self.boundary, 1.0, self.ratio)
        return lr * keras.ops.cast(scale, lr.dtype)

    def get_config(self):
        return {
            "base": keras.optimizers.schedules.serialize(self.base),
            "boundary": self.boundary,
            "ratio": self.ratio,
        }


def backbone_layers(network, loaded):
    """The layers frozen during the first phase: those loaded, less the classifier(s)."""
    loaded = set(loaded)
    frozen = [layer for layer in network.layers if layer.weights and layer.name in loaded]
    head = [layer for layer in network.layers if layer.weights and layer.name not in loaded]
    if not head:  # everything came from the weights: the classifier is the head
        frozen = [layer for layer in frozen if not is_classifier(layer.name)]
    return frozen


def _inner(optimizer):
    return getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer under mixed_float16


class FreezeBackbone(keras.callbacks.Callback):
    """Freeze `layers` for epochs < `epochs`, then train everything at lr x `ratio`.

    Adds `backbone_frozen` (1 or 0) to each epoch's logs, so history.csv
    shows the phases. List it before the history writer.
    """

    def __init__(self, layers, epochs, ratio):
        super().__init__()
        self.layers = list(layers)
        self.epochs = int(epochs)
        self.ratio = float(ratio)
        self.frozen = None

    def prepare(self, model, steps_per_epoch):
        """Call before `fit`: build the optimizer, wrap a schedule in `PhasedSchedule`.

        A Keras 3 optimizer only ever updates the variables it was built
        with; built while the backbone is frozen it would refuse the
        backbone later, so it is built now, with every variable trainable.
        """
        optimizer = model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        inner = _inner(optimizer)
        base = inner._learning_rate
        if isinstance(base, keras.optimizers.schedules.LearningRateSchedule):
            inner.learning_rate = PhasedSchedule(base, self.epochs * steps_per_epoch, self.ratio)
            return True
        return False

    def on_epoch_begin(self, epoch, logs=None):
        frozen = epoch < self.epochs
        if frozen == self.frozen:
            return
        if epoch == self.epochs:
            # Epoch E begins: the second phase. A schedule already scales
            # itself; a learning-rate variable still holds its first-phase
            # value (also in a run resumed at E) and is scaled here, once; a
            # run resumed after E restores the scaled value from its backup.
            inner = _inner(self.model.optimizer)
            if not isinstance(inner._learning_rate, keras.optimizers.schedules.LearningRateSchedule):
                inner.learning_rate = float(keras.ops.convert_to_numpy(inner.learning_rate)) * self.ratio
        for layer in self.layers:
            layer.trainable = not frozen
        self.frozen = frozen
        # The compiled step captured the trainable variables and BN modes.
        self.model.make_train_function(force=True)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["backbone_frozen"] = 1.0 if self.frozen else 0.0
