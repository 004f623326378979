"""`CNNHyperModel`: a registered CNN as a KerasTuner hypermodel.

`build(hp)` asks the search space for one trial's settings, validates them
as a `RunConfig` (the same checks as `fit`), builds the registered model with
the chosen options and compiles it with the chosen optimizer, exactly as
`kerascnn.training.fit.fit` does (L2 penalty, auxiliary heads, loss and metrics).
`fit(hp, model, ...)` makes that trial's datasets (its batch size and its
train/validation split) and trains.

The split: the CIFAR-10 study's "train/test split 70/30 or 90/10" is our
`val_split` (0.3 or 0.1) of the training split. The held-out part is the
validation set the tuner maximises (`val_accuracy`); the real test split is
never seen during the search, and each trial's *test* accuracy is measured
afterwards on it with the trial's best checkpoint (see `tuning.tuners`).
"""

import collections
import dataclasses

import keras
import keras_tuner as kt

from kerascnn.models.auxiliary import inference_model
from kerascnn.training.callbacks import EpochTimer
from kerascnn.config import OptimConfig, RunConfig
from kerascnn.data.pipeline import make_datasets, read_guard
from kerascnn.models import model_defaults
from kerascnn.training.fit import build_models

from tuning.spaces import Baseline

# Datasets kept between trials: grid search varies the last hyperparameters
# fastest, so consecutive trials usually share their split and batch size.
_DATA_CACHE_SIZE = 2


class CNNHyperModel(kt.HyperModel):
    """Builds and trains `base.model` with the options a search space picks.

    Args:
        base: a `RunConfig` carrying what every trial shares: the model name,
            fixed model options, the data flags (dataset, data_dir,
            image_size, limit_train), epochs, patience and seed.
        space: a function from `tuning.spaces` (`define(hp, baseline)`).
        source: the opened `DataSource` (opened once, shared by all trials).
        replicas: replicas in sync of the tuner's distribution strategy;
            the global batch is the chosen batch size times this.
    """

    def __init__(self, base, space, source, replicas=1, verbose=0):
        super().__init__(name=base.model)
        self.base = base
        self.space = space
        self.source = source
        self.replicas = replicas
        self.verbose = verbose
        info = source.info
        self.num_classes = info.num_classes
        size = tuple(base.data.image_size or info.image_shape[:2])
        self.input_shape = (*size, 3)
        self.baseline = Baseline(base.model, {**model_defaults(base.model), **base.model_options}, size)
        self._data = collections.OrderedDict()

    # --- hp -> settings --------------------------------------------------------

    def settings(self, hp):
        """The space's `TrialSettings` for the values in `hp`."""
        return self.space(hp, self.baseline)

    def trial_config(self, hp):
        """The trial as a validated `RunConfig` (what `fit` would have been given)."""
        s = self.settings(hp)
        return self.base.replace(
            model_options={**self.base.model_options, **s.model_options},
            data=dataclasses.replace(self.base.data, **s.data),
            optim=OptimConfig(**s.optim),
        )

    def datasets(self, config):
        """The trial's `Datasets` (split + batch), cached across trials."""
        key = (config.data, config.seed)
        if key not in self._data:
            while len(self._data) >= _DATA_CACHE_SIZE:
                self._data.popitem(last=False)
            global_batch = config.data.batch_size * self.replicas
            self._data[key] = make_datasets(self.source, config.data, global_batch, config.seed)
        self._data.move_to_end(key)
        return self._data[key]

    # --- KerasTuner -------------------------------------------------------------

    def build(self, hp):
        config = self.trial_config(hp)
        # Every trial starts from the same initial weights for a given seed,
        # so trials differ by their hyperparameters, not by luck of the draw.
        keras.utils.set_random_seed(config.seed)
        # Spaces use a constant learning rate, so the schedule needs no step count.
        _, model, _ = build_models(
            config.model, self.num_classes, self.input_shape, config.model_options, config.optim,
            steps_per_epoch=1, epochs=config.epochs, jit=config.jit,
        )
        return model

    def fit(self, hp, model, *args, callbacks=None, epochs=None, **kwargs):
        """Train on the trial's own split and batch size.

        Hyperband passes `epochs` and `initial_epoch`; other tuners train for
        the configured epochs (early stopping comes in through `callbacks`).
        """
        config = self.trial_config(hp)
        data = self.datasets(config)
        kwargs.setdefault("verbose", self.verbose)  # tuner.search(verbose=...) arrives here too
        return read_guard(
            self.source,
            model.fit,
            data.train,
            validation_data=data.val,
            epochs=epochs or config.epochs,
            shuffle=False,  # the pipeline shuffles, seeded, every epoch
            callbacks=[EpochTimer(), *(callbacks or [])],
            **kwargs,
        )


def inference_network(model):
    """The model to evaluate, checkpoint and export: without auxiliary heads."""
    network = getattr(model, "network", model)  # AuxiliaryLossModel wraps the network
    return inference_model(network)


def base_config(model, **flags):
    """The `RunConfig` shared by every trial, from CLI-style flags (None = default)."""
    return RunConfig.from_flags(model, **flags)
