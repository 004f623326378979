"""The four tuners, each recording what trials.csv needs after every trial.

`make_tuner(name, ...)` returns KerasTuner's GridSearch, RandomSearch,
BayesianOptimization or Hyperband with `TrialRecorder` mixed in. After the
tuner has trained a trial (KerasTuner keeps its best epoch's weights in
`trial_<id>/checkpoint.weights.h5`), the recorder reloads that checkpoint,
evaluates it on the test split and writes `trial_<id>/kerascnn_trial.json`:
the trial's settings, epochs run, best train and validation accuracy, test
accuracy, wall time and seconds per epoch. It is written before KerasTuner
marks the trial finished, so every finished trial has its measurements,
also when several workers share the folder.
"""

import contextlib
import os
import pathlib
import socket
import time
import warnings

import keras_tuner as kt
import numpy as np
from keras_tuner.src.tuners.gridsearch import LinkedList

from kerascnn.storage import rundir
from kerascnn.data.pipeline import read_guard
from kerascnn.errors import ConfigError, UserError
from kerascnn import faults

from tuning import searchdir
from tuning.spaces import describe_config

TUNERS = ("grid", "random", "bayesian", "hyperband")
OBJECTIVE = "val_accuracy"
DEFAULT_MAX_TRIALS = 10  # random and bayesian; grid runs the whole grid by default


class TrialUserError(kt.errors.FatalError, UserError):
    """A user error (unreadable data, ...) inside a trial: stops the search.

    KerasTuner turns ordinary exceptions into failed trials and carries on;
    a FatalError is re-raised, and as a UserError the CLI prints one line.
    """


class TrialRecorder:
    """Mixin for a KerasTuner tuner whose hypermodel is a `CNNHyperModel`.

    Attributes:
        on_trial_done: called with no argument after each trial has ended
            (the oracle has saved it); the CLI rewrites trials.csv there.
    """

    on_trial_done = None

    def search(self, *args, **kwargs):
        """KerasTuner's search; a chief notices that the last trial ended within a second.

        KerasTuner's chief, once no trial is left to hand out, polls every
        20 s for the running ones to end: a search's report came up to 20 s
        after its last trial, idle (KerasTuner 1.4, `oracle_chief.start_server`).
        """
        from keras_tuner.src.distribute import utils as dist_utils

        if not dist_utils.is_chief_oracle():
            return super().search(*args, **kwargs)
        from keras_tuner.src.distribute import oracle_chief

        with _polling_every(oracle_chief, CHIEF_POLL_SECONDS):
            return super().search(*args, **kwargs)

    def run_trial(self, trial, *args, **kwargs):
        faults.point("tune.trial")
        start = time.perf_counter()
        try:
            histories = super().run_trial(trial, *args, **kwargs)
            wall = time.perf_counter() - start
            self._record(trial, histories[-1].history, wall)
        except UserError as e:
            raise TrialUserError(str(e)) from None
        return histories

    def _record(self, trial, history, wall):
        hm = self.hypermodel
        hp = trial.hyperparameters
        model = load_trial_model(self, trial)
        config = hm.trial_config(hp, model)  # with its RunRecord, as a fit run's config.json
        data = hm.datasets(config)
        test = read_guard(hm.source, model.evaluate, data.test, verbose=0, return_dict=True)
        seconds = history.get("epoch_seconds", [])
        # The first epoch includes tracing and filling the data cache.
        steady = seconds[1:] if len(seconds) > 1 else seconds
        extras = {
            "trial_id": trial.trial_id,
            "settings": describe_config(config),
            "epochs_run": len(history.get(OBJECTIVE, [])),
            "diverged": describe_divergence(hm.diverged),
            "best_train_accuracy": _max(history.get("accuracy")),
            "best_val_accuracy": _max(history.get(OBJECTIVE)),
            "test_accuracy": float(test["accuracy"]),
            "test_loss": float(test["cross_entropy"]),
            "wall_seconds": wall,
            "seconds_per_epoch": float(np.median(steady)) if steady else None,
            "num_train": data.num_train,
            "num_val": data.num_val,
            "num_test": data.num_test,
            "tuner_id": self.tuner_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "run_config": config.to_dict(),
        }
        path = pathlib.Path(self.get_trial_dir(trial.trial_id)) / searchdir.EXTRAS
        rundir.write_json(path, extras)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)  # the oracle ends and saves the trial here
        if self.on_trial_done is not None:
            self.on_trial_done()


def load_trial_model(tuner, trial):
    """The trial's model with the weights of its best epoch (KerasTuner's SaveBestEpoch)."""
    with warnings.catch_warnings():
        # The checkpoint also holds optimizer variables, which evaluation does not need.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        return tuner.load_model(trial)


def describe_divergence(where):
    """"epoch E batch B: loss nan" (or "epoch E: val_loss inf") from `StopOnNonFinite.where`; None if finite."""
    if where is None:
        return None
    epoch, batch, value, key = where
    return f"epoch {epoch}" + (f" batch {batch}" if batch is not None else "") + f": {key} {value}"


def _max(values):
    return float(max(values)) if values else None


class ResumableGridSearchOracle(kt.oracles.GridSearchOracle):
    """KerasTuner's grid oracle, with the grid position saved so a search can resume.

    KerasTuner 1.4 saves neither the grid order of the trials (`_ordered_ids`)
    nor the trials whose successors are still to be generated
    (`_populate_next`): a reloaded grid search fails with `KeyError` on the
    next trial. Both are added to the oracle's state here, and the state is
    saved again after `end_trial` (the parent saves before it queues the
    trial, which a killed chief would otherwise lose).
    """

    def get_state(self):
        state = super().get_state()
        state["grid_order"] = list(_linked_list_items(self._ordered_ids))
        state["populate_next"] = list(self._populate_next)
        return state

    def set_state(self, state):
        super().set_state(state)
        self._ordered_ids = LinkedList()
        for trial_id in state.get("grid_order", []):
            self._ordered_ids.insert(trial_id)
        self._populate_next = list(state.get("populate_next", []))

    def end_trial(self, trial):
        super().end_trial(trial)
        self.save()


def _linked_list_items(linked):
    index = linked._next_index[None]  # the head
    while index is not None:
        yield linked._memory[index]
        index = linked._next_index[index]


CHIEF_POLL_SECONDS = 0.5


class _Sleeps:
    """A `time` module whose `sleep` lasts at most `seconds`."""

    def __init__(self, seconds):
        self.seconds = seconds

    def __getattr__(self, name):
        return getattr(time, name)

    def sleep(self, seconds):
        time.sleep(min(seconds, self.seconds))


@contextlib.contextmanager
def _polling_every(module, seconds):
    """While inside, `module`'s `time.sleep(s)` sleeps at most `seconds` (its polling loops poll sooner)."""
    module.time = _Sleeps(seconds)
    try:
        yield
    finally:
        module.time = time


class GridSearch(TrialRecorder, kt.Tuner):
    """`kt.GridSearch` with `ResumableGridSearchOracle`."""

    def __init__(self, hypermodel=None, objective=None, max_trials=None, seed=None, **kwargs):
        oracle = ResumableGridSearchOracle(objective=objective, max_trials=max_trials, seed=seed)
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)


class RandomSearch(TrialRecorder, kt.RandomSearch):
    pass


class BayesianOptimization(TrialRecorder, kt.BayesianOptimization):
    pass


class Hyperband(TrialRecorder, kt.Hyperband):
    pass


def check_tuner_args(name, max_trials=None, max_epochs=None):
    """Raise ConfigError for an unknown tuner or numbers that cannot work."""
    if name not in TUNERS:
        raise ConfigError(f"unknown tuner {name!r}; choose one of {', '.join(TUNERS)}")
    if max_trials is not None and (isinstance(max_trials, bool) or max_trials < 1):
        raise ConfigError(f"--max-trials must be a positive integer. Received: max_trials={max_trials}")
    if max_epochs is not None and max_epochs < 1:
        raise ConfigError(f"--max-epochs must be a positive integer. Received: max_epochs={max_epochs}")
    if name == "bayesian":
        try:
            import scipy  # noqa: F401  (KerasTuner's Gaussian process needs it)
        except ImportError:
            raise ConfigError(
                "--tuner bayesian needs scipy: pip install 'keras-tuner[bayesian]' (or use random or hyperband)"
            ) from None
    if name == "hyperband" and max_trials is not None:
        raise ConfigError("hyperband sets the number of trials from --max-epochs; drop --max-trials")
    if name != "hyperband" and max_epochs is not None:
        raise ConfigError("--max-epochs is for --tuner hyperband; the other tuners train --epochs per trial")


def make_tuner(
    name,
    hypermodel,
    results_dir,
    *,
    max_trials=None,
    max_epochs=None,
    seed=0,
    overwrite=False,
    distribution_strategy=None,
):
    """A tuner writing to `results_dir/search/`; it resumes what is there unless `overwrite`."""
    check_tuner_args(name, max_trials, max_epochs)
    common = dict(
        hypermodel=hypermodel,
        objective=kt.Objective(OBJECTIVE, direction="max"),
        seed=seed,
        directory=str(results_dir),
        project_name=searchdir.PROJECT,
        overwrite=overwrite,
        distribution_strategy=distribution_strategy,
    )
    if name == "grid":
        return GridSearch(max_trials=max_trials, **common)
    if name == "random":
        return RandomSearch(max_trials=max_trials or DEFAULT_MAX_TRIALS, **common)
    if name == "bayesian":
        return BayesianOptimization(max_trials=max_trials or DEFAULT_MAX_TRIALS, **common)
    return Hyperband(max_epochs=max_epochs or hypermodel.base.epochs, factor=3, **common)
