"""`fit(config)`: one training run end to end, composed of named phases.

    plan_run          plan.py          pure: model, weights, placement, auto settings
    runtime_context   context.py       TF_CONFIG, seed, precision policy, strategy (restored after)
    prepare_data      data.py          source, batch size, train/val/test pipelines
    build             build.py         models compiled in the strategy scope, weights loaded
    recorded_config   record.py        the typed RunRecord that config.json holds
    run_directory     run_directory.py the chief's folder (config.json first) or a worker's scratch
    run_callbacks     callbacks.py     history, backup, best checkpoint, TensorBoard, schedules
    train             train.py         model.fit, out-of-memory and divergence made plain
    evaluate_best     evaluation.py    the best-validation checkpoint on the test split
    publish           publish.py       curves, metrics.json (last), the export

Order matters for "nothing half-written": every check that can fail on the
user's input (model name, numbers, devices, data location, every image) runs
before `run_directory` creates the folder.
"""

from kerascnn.errors import StorageError, disk_error_text, is_disk_error
from kerascnn.recipe_results import measured
from kerascnn.training.build import build
from kerascnn.training.callbacks import run_callbacks
from kerascnn.training.context import runtime_context
from kerascnn.training.data import prepare_data
from kerascnn.training.evaluation import evaluate_best
from kerascnn.training.plan import plan_run
from kerascnn.training.publish import RunResult, publish
from kerascnn.training.record import recorded_config
from kerascnn.training.run_directory import run_directory
from kerascnn.training.train import train

__all__ = ["RunResult", "fit"]


def fit(config=None, resume_dir=None, log=print, verbose=None, extra_callbacks=(), epochs=None):
    """Train `config` (a RunConfig), or continue the run in `resume_dir`; return a `RunResult`.

    `epochs` above a resumed run's budget extends it, finished or not
    (`kerascnn.training.extension` says how the learning rate continues).
    `extra_callbacks` are appended to the run's own Keras callbacks. The
    caller's mixed-precision policy is in force again when `fit` returns.
    """
    plan = plan_run(config, resume_dir, epochs)
    with runtime_context(plan) as runtime:
        data = prepare_data(plan, runtime, log)
        built = build(plan, runtime, data, log)
        config = recorded_config(plan, runtime, data, built)
        with run_directory(config, plan, runtime) as (config, run_dir):
            before = plan.transfer.callbacks(
                built.network, built.model, config, data.datasets.steps_per_epoch, built.optim.lr
            )
            callbacks = run_callbacks(
                config, run_dir, data.first_epoch, built.checkpoint_model, extra_callbacks, before,
                validate=data.datasets.val is not None,
                train_batches=data.datasets.train, global_batch=data.global_batch,
                steps_per_epoch=data.datasets.steps_per_epoch,
            )
            announce(plan, runtime, data, built, run_dir, log)
            try:
                train(config, run_dir, data, built, callbacks, verbose)
                # One replica: best.keras' weights go into the network already in memory (the
                # saving is a network build). Distributed runs keep loading the whole file, as they
                # always have (their multi-replica tests compare those models), and a model-parallel
                # run's checkpoint is its single-device equivalent, which only the file holds.
                in_memory = runtime.replicas == 1 and built.checkpoint_model is built.inference
                network = built.inference if in_memory else None
                metrics, best = evaluate_best(config, run_dir, runtime, data, network)
                return publish(config, run_dir, runtime, data, metrics, best, log)
            except OSError as e:
                if not is_disk_error(e):
                    raise
                # Every file of a run is written whole or not at all (kerascnn.storage.atomic),
                # so what is on disk is the last good state: say how to continue from it.
                raise StorageError(
                    f"{disk_error_text(e, run_dir)}; {run_dir} keeps its last good checkpoint and backup: "
                    f"free some space, then continue with `fit --resume {run_dir}`"
                ) from None


def announce(plan, runtime, data, built, run_dir, log=print):
    """The run's first log lines: what trains on what, how, where, and what `auto` chose."""
    config, info, ds = plan.config, data.info, data.datasets
    h, w = data.input_shape[:2]
    log(
        f"{'resuming' if plan.resumed else 'training'} {config.model} ({built.inference.count_params():,} parameters) "
        f"on {info.name}: {ds.num_train} train / {ds.num_val} val / {ds.num_test} test images "
        f"at {h}x{w}, {info.num_classes} classes"
    )
    sync = f", synchronised batch norm ({built.sync_bn_layers} layers)" if config.sync_bn else ""
    log(
        f"{runtime.description}: {runtime.replicas} replica{'s' if runtime.replicas > 1 else ''} x batch "
        f"{data.batch_size} = global batch {data.global_batch}, {config.precision}, lr {built.optim.lr:g}{sync}; "
        f"run directory {run_dir}"
    )
    if config.replayed_from:
        overrides = ", ".join(f"{k}={v}" for k, v in config.replayed_from["overrides"].items()) or "none"
        log(f"settings of {config.replayed_from['config']}; overridden: {overrides}")
    if plan.extension is not None:
        ext = plan.extension
        log(f"extending the run from {ext['from_epochs']} to {ext['to_epochs']} epochs: {ext['schedule']}")
    for setting, reason in plan.auto_reasons.items():
        # `auto` is the default: say what it chose and why, and how to opt out.
        value = config.precision if setting == "precision" else ("XLA on" if config.jit else "XLA off")
        log(f"--{setting} auto: {value} ({reason}); give --{setting} to choose")
    log(f"augmentation: {ds.augmentation.describe()}")
    evidence = measured(config.model, config.recipe) if config.recipe else None
    if evidence and not plan.resumed:
        # What the recipe reached when measured, so a user knows what to expect
        # (and, with flags over it, what the run departs from).
        log(f"recipe {config.recipe} measured: {evidence}")
