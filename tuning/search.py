"""One search end to end: check, resume or start, run the tuner, report, export.

`run_search` is what `python main.py tune` calls. Every check that can fail
on the user's input (model, space, tuner, numbers, the results folder, the
data location) runs before the tuner writes anything.

Distributed searches follow KerasTuner's chief/worker protocol: with
KERASTUNER_ORACLE_IP/PORT set, the process whose KERASTUNER_TUNER_ID is
"chief" serves the oracle (it trains nothing) and the others ("tuner0",
"tuner1", ...) ask it for trials and train them. All of them must point at
the same results folder (a shared file system across machines). The chief
writes trials.csv, summary.md and the plots once every trial has ended.
"""

import dataclasses
import os
import sys

from kerascnn.config import RunConfig
from kerascnn.errors import ConfigError, DataError
from kerascnn.models import check_model_name, model_defaults

from tuning import searchdir
from tuning.spaces import Baseline, enumerate_grid, get_space
from tuning.tuners import check_tuner_args, load_trial_model

STRATEGIES = ("default", "mirrored")


@dataclasses.dataclass
class SearchRequest:
    """What the `tune` command was asked to do (see `tuning.cli` for each flag)."""

    base: RunConfig
    space: str = "seed-grid"
    tuner: str = "grid"
    max_trials: int = None
    max_epochs: int = None
    results_dir: str = None
    overwrite: bool = False
    export: bool = False
    distribution_strategy: str = "default"

    def check(self):
        check_model_name(self.base.model)
        get_space(self.space)
        check_tuner_args(self.tuner, self.max_trials, self.max_epochs)
        if self.distribution_strategy not in STRATEGIES:
            raise ConfigError(
                f"unknown distribution strategy {self.distribution_strategy!r}; choose one of {', '.join(STRATEGIES)}"
            )
        if self.results_dir is None:
            self.results_dir = str(searchdir.default_results_dir(self.base.model, self.space, self.tuner))

    def identity(self):
        d = self.base.data
        return {
            "model": self.base.model,
            "space": self.space,
            "tuner": self.tuner,
            "data": {
                "dataset": d.dataset,
                "data_dir": os.path.abspath(d.data_dir) if d.data_dir else None,
                "image_size": list(d.image_size) if d.image_size else None,
                "limit_train": d.limit_train,
                "augment": d.augment,
            },
        }


def dry_run(request, out=None):
    """Print the configurations a search would try, without data or training."""
    out = out or sys.stdout  # looked up per call: tests and callers may redirect stdout
    request.check()
    base = request.base
    defaults = {**model_defaults(base.model), **base.model_options}
    size = tuple(base.data.image_size or defaults.get("input_shape", (32, 32, 3))[:2])
    space = get_space(request.space)
    baseline = Baseline.of(base, defaults, size)
    import keras_tuner as kt

    hp = kt.HyperParameters()
    space(hp, baseline)
    discrete = all(type(p).__name__ in ("Choice", "Boolean", "Fixed") for p in hp.space)
    if not discrete:
        print(f"{base.model}, space {request.space}, tuner {request.tuner}: continuous space", file=out)
        for p in hp.space:
            config = p.get_config()
            config.pop("name")
            conditions = config.pop("conditions", [])
            when = ""
            if conditions:
                c = conditions[0]["config"]
                when = f"  (when {c['name']} in {c['values']})"
            print(f"  {p.name:<18} {type(p).__name__:<8} {_range(config)}{when}", file=out)
        return 0
    grid = enumerate_grid(space, baseline)
    limit = request.max_trials if request.tuner != "hyperband" else None
    shown = grid[:limit] if (request.tuner == "grid" and limit) else grid
    print(f"{base.model}, space {request.space}: {len(grid)} configurations", end="", file=out)
    print(f" (tuner {request.tuner} runs {len(shown)})" if len(shown) != len(grid) else "", file=out)
    keys = ("optimizer", "learning_rate", "batch_size", "val_split", "regularization")
    print("    #  " + "  ".join(f"{k:<14}" for k in keys), file=out)
    for i, (_, settings) in enumerate(shown, start=1):
        described = settings.describe()
        print(f"  {i:>3}  " + "  ".join(f"{str(described[k]):<14}" for k in keys), file=out)
    return 0


def _range(config):
    if "values" in config and config["values"] is not None and "min_value" not in config:
        return f"one of {config['values']}, default {config.get('default')}"
    if "min_value" in config:
        return (
            f"{config['min_value']} .. {config['max_value']} ({config.get('sampling') or 'linear'}"
            f"{', step ' + str(config['step']) if config.get('step') else ''}), default {config.get('default')}"
        )
    return f"default {config.get('default')}"


def run_search(request, log=print, verbose=None):
    """Run (or resume) the search; return the trials' rows (`tuning.results.collect`).

    The search is planned and run like one `fit` (`kerascnn.training`):
    `plan_run` resolves --precision / --jit auto for this machine, and the
    whole search runs in `runtime_context` with the strategy `fit` would
    choose (`--distribution-strategy mirrored` is fit's `--devices all`).
    """
    from kerascnn.training import plan_run
    from kerascnn.training.context import runtime_context
    from kerascnn.training.data import open_run_source

    from tuning.results import check_resumable

    request.check()
    role = searchdir.distributed_role()
    if not request.overwrite:
        # What KerasTuner reloads, read (only) before anything else.
        check_resumable(request.results_dir, tuner_id="tuner0" if role is None else None)
    devices = "all" if request.distribution_strategy == "mirrored" else request.base.devices
    plan = plan_run(request.base.replace(devices=devices))
    # Open the data before the folder is touched: a wrong path fails here.
    source = open_run_source(plan.config)
    resumed = searchdir.prepare(request.results_dir, request.identity(), request.overwrite, role)
    with runtime_context(plan) as runtime:
        return _search(request, plan, runtime, source, resumed, role, log, verbose)


def _search(request, plan, runtime, source, resumed, role, log, verbose):
    """The search itself, inside the runtime context of its plan."""
    import keras

    from tuning.hypermodel import CNNHyperModel
    from tuning.results import write_report
    from tuning.tuners import make_tuner

    base = plan.config
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    hypermodel = CNNHyperModel(plan, get_space(request.space), source, runtime, verbose=verbose)
    try:
        tuner = make_tuner(
            request.tuner,
            hypermodel,
            request.results_dir,
            max_trials=request.max_trials,
            max_epochs=request.max_epochs,
            seed=base.seed,
            # Workers never wipe the shared folder; the chief's --overwrite did (prepare).
            overwrite=False,
            distribution_strategy=runtime.strategy,
        )
    except (KeyError, ValueError, TypeError, AttributeError, IndexError, RuntimeError) as e:
        if not resumed:
            raise
        # KerasTuner reloads its project here; `check_resumable` has read every file, this is what it could not see.
        from tuning.results import damaged

        detail = " ".join(str(e).split())[:160]
        raise DataError(f"KerasTuner cannot reload the search in {request.results_dir} ({type(e).__name__}: "
                        f"{detail}); {damaged(request.results_dir)}") from None
    if role is None:
        # trials.csv after every trial: a long search can be watched, and a
        # killed one still leaves its finished trials listed.
        tuner.on_trial_done = lambda: write_report(request.results_dir, plots=False)
    log(
        f"{'resuming' if resumed else 'starting'} {request.tuner} search of {base.model} over space "
        f"{request.space} on {source.info.name}; results in {request.results_dir}"
        + (f" ({role}, tuner id {os.environ['KERASTUNER_TUNER_ID']})" if role else "")
    )
    log(f"{runtime.description}, {base.precision}, {'XLA on' if base.jit else 'XLA off'} for every trial")
    for setting, reason in plan.auto_reasons.items():
        log(f"--{setting} auto: {reason}; give --{setting} to choose")
    callbacks = [
        keras.callbacks.TensorBoard(
            os.path.join(request.results_dir, searchdir.TENSORBOARD), profile_batch=0, write_graph=False
        )
    ]
    if base.patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=base.patience)
        )
    # `verbose` reaches both KerasTuner's trial display and model.fit (2: one line per epoch).
    tuner.search(epochs=base.epochs, callbacks=callbacks, verbose=verbose)
    if role == "worker":
        log(f"worker {os.environ['KERASTUNER_TUNER_ID']} done: the chief writes the report")
        return []
    rows = write_report(request.results_dir)
    _log_best(rows, request.results_dir, log)
    if request.export:
        path = export_best(tuner, hypermodel, base)
        if path is not None:
            log(f"exported the best trial's model to {path}")
    return rows


def _log_best(rows, results_dir, log):
    from tuning.results import best, completed

    done = completed(rows)
    log(f"{len(done)} of {len(rows)} trials completed; {results_dir}/trials.csv, summary.md, plots/")
    top = best(rows, 1)
    if top:
        r = top[0]
        log(
            f"best trial {r['trial_id']}: val accuracy {r['best_val_accuracy']:.4f}, test accuracy "
            f"{r['test_accuracy']:.4f} ({r['optimizer']} lr {r['learning_rate']:g}, batch {r['batch_size']}, "
            f"val split {r['val_split']}, {r['regularization']})"
        )


def export_best(tuner, hypermodel, base):
    """Export the best trial's best checkpoint like `fit --export`; None if no trial finished."""
    trials = tuner.oracle.get_best_trials(1)
    if not trials:
        return None
    from kerascnn.serving.export import export_model

    from tuning.hypermodel import inference_network

    trial = trials[0]
    trained = load_trial_model(tuner, trial)
    config = hypermodel.trial_config(trial.hyperparameters, trained)
    config = config.replace(resolved=config.resolved.replace(tuning_trial=trial.trial_id))
    data = hypermodel.datasets(config)
    info = hypermodel.source.info
    return export_model(
        inference_network(trained), data.preprocessing, info.class_names, base.model, base.export_dir,
        config.to_dict(), serving_precision=base.serving_precision,
    )
