"""`CNNHyperModel`: a registered CNN as a KerasTuner hypermodel.

A search is planned and run like one `fit` (`kerascnn.training`): the base
configuration goes through `plan_run` (model check, `--precision auto` /
`--jit auto` resolved for this machine with the reasons) and the whole
search runs inside `runtime_context` (seed, precision policy, the strategy
`fit` would choose). Each trial is then the plan with the space's settings:
`build(hp)` validates them as a `RunConfig` (the same checks as `fit`) and
builds through `kerascnn.training.build.build_models`, the one
model-building path (weight decay, auxiliary heads, loss and metrics);
`fit(hp, model, ...)` makes that trial's datasets (its batch size and its
train/validation split) and trains; `trial_config(hp, model)` is what a
trial recorded, with the same typed `RunRecord` as a `fit` run's config.json.

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

from kerascnn.config import OptimConfig
from kerascnn.data.pipeline import make_datasets, read_guard
from kerascnn.models import model_defaults
from kerascnn.models.auxiliary import inference_model
from kerascnn.runtime.strategies import work_around_distributed_build
from kerascnn.training.build import Built, build_models
from kerascnn.training.callbacks import EpochTimer, FaultPoints, StopOnNonFinite
from kerascnn.training.data import RunData, input_shape_of
from kerascnn.training.record import make_record

from tuning.spaces import Baseline

# Datasets kept between trials: grid search varies the last hyperparameters
# fastest, so consecutive trials usually share their split and batch size.
_DATA_CACHE_SIZE = 2


class CNNHyperModel(kt.HyperModel):
    """Builds and trains `base.model` with the options a search space picks.

    Args:
        plan: the `RunPlan` of the configuration every trial shares
            (`kerascnn.training.plan_run`): the model name, fixed model
            options, the data flags (dataset, data_dir, image_size,
            limit_train), epochs, patience, seed, and the concrete
            precision and XLA setting.
        space: a function from `tuning.spaces` (`define(hp, baseline)`).
        source: the opened `DataSource` (opened once, shared by all trials).
        runtime: the search's `Runtime` (`kerascnn.training.runtime_context`);
            the global batch is the chosen batch size times its replicas.
    """

    def __init__(self, plan, space, source, runtime, verbose=0):
        super().__init__(name=plan.config.model)
        self.plan = plan
        self.base = plan.config
        self.space = space
        self.source = source
        self.runtime = runtime
        self.replicas = runtime.replicas
        self.verbose = verbose
        self.num_classes = source.info.num_classes
        self.input_shape = input_shape_of(self.base, source.info)
        defaults = {**model_defaults(self.base.model), **self.base.model_options}
        self.baseline = Baseline.of(self.base, defaults, self.input_shape[:2])
        self._data = collections.OrderedDict()
        self.diverged = None  # where the last trial's fit stopped on a non-finite figure (`fit`)

    # --- hp -> settings --------------------------------------------------------

    def settings(self, hp):
        """The space's `TrialSettings` for the values in `hp`."""
        return self.space(hp, self.baseline)

    def trial_config(self, hp, model=None):
        """The trial as a validated `RunConfig` (what `fit` would have been given).

        With the trial's trained `model`, the config carries the trial's
        `RunRecord` (data, strategy, batch, precision reasons, parameters),
        as a `fit` run's config.json does.
        """
        s = self.settings(hp)
        config = self.base.replace(
            model_options={**self.base.model_options, **s.model_options},
            data=dataclasses.replace(self.base.data, **s.data),
            optim=OptimConfig(**s.optim),
        )
        if model is None:
            return config
        return config.replace(resolved=self.trial_record(config, model))

    def trial_record(self, config, model):
        """The trial's `RunRecord`, made by the same phase as a `fit` run's (`make_record`)."""
        datasets = self.datasets(config)
        batch = config.data.batch_size
        data = RunData(self.source, self.input_shape, batch, batch * self.replicas, datasets)
        network = getattr(model, "network", model)  # AuxiliaryLossModel wraps the network
        inference = inference_model(network)
        built = Built(network, model, inference, inference, config.optim)
        return make_record(dataclasses.replace(self.plan, config=config), self.runtime, data, built)

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
        # KerasTuner calls this inside the search strategy's scope.
        _, model, _ = build_models(
            config.model, self.num_classes, self.input_shape, config.model_options, config.optim,
            steps_per_epoch=1, epochs=config.epochs, jit=config.jit,
        )
        # As a run's model: a validation set smaller than one global batch must not break the build.
        return work_around_distributed_build(model, self.runtime.strategy)

    def fit(self, hp, model, *args, callbacks=None, epochs=None, **kwargs):
        """Train on the trial's own split and batch size.

        Hyperband passes `epochs` and `initial_epoch`; other tuners train for
        the configured epochs (early stopping comes in through `callbacks`).
        A trial whose loss or validation figures turn NaN or infinite stops
        there, as a `fit` run does, instead of training its remaining epochs
        on NaN weights; `self.diverged` holds where (`StopOnNonFinite.where`)
        until the tuner records the trial.
        """
        config = self.trial_config(hp)
        data = self.datasets(config)
        kwargs.setdefault("verbose", self.verbose)  # tuner.search(verbose=...) arrives here too
        stopper = StopOnNonFinite()
        history = read_guard(
            self.source,
            model.fit,
            data.train,
            validation_data=data.val,
            epochs=epochs or config.epochs,
            shuffle=False,  # the pipeline shuffles, seeded, every epoch
            callbacks=[EpochTimer(), *(callbacks or []), stopper, FaultPoints()],
            **kwargs,
        )
        self.diverged = stopper.where
        return history


def inference_network(model):
    """The model to evaluate, checkpoint and export: without auxiliary heads."""
    network = getattr(model, "network", model)  # AuxiliaryLossModel wraps the network
    return inference_model(network)
