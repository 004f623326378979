"""Training: `fit(config)` runs one experiment end to end.

Order matters for "nothing half-written": every check that can fail on the
user's input (model name, numbers, devices, data location, every image) runs
before the run directory is created. Then: model built and compiled inside
`strategy.scope()`, `model.fit` with BackupAndRestore so a killed run resumes,
the best checkpoint evaluated on the test split, metrics.json written last.
"""

import dataclasses
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

from kerascnn.training import callbacks as cb
from kerascnn.analysis.confusion import write_class_report
from kerascnn.models.auxiliary import inference_model, training_model
from kerascnn.storage import rundir
from kerascnn.config import RunConfig
from kerascnn.data.pipeline import make_datasets, read_guard
from kerascnn.data.choose_source import open_source
from kerascnn.runtime.batch_size import OutOfMemory, find_batch_size, is_out_of_memory, out_of_memory_message
from kerascnn.runtime.strategies import (
    is_chief,
    scaled_learning_rate,
    select_strategy,
    synchronize_batch_norm,
    work_around_multiworker_build,
    workers_tf_config,
)
from kerascnn.errors import ConfigError, UserError
from kerascnn.runtime import hardware
from kerascnn.runtime import model_parallel as parallel
from kerascnn.training.optim import build_optimizer, coupled_weight_decay, with_l2_penalty
from kerascnn.analysis.curves import plot_curves
from kerascnn.models import check_model_name, create_model
from kerascnn.serving.tta import ten_crop_metrics
from kerascnn.weights import plan as weights_plan


class Diverged(UserError):
    """The loss became NaN or infinite."""


@dataclasses.dataclass
class RunResult:
    """What `fit` returns: where the run is, its metrics, the best model, the export."""

    run_dir: pathlib.Path
    metrics: dict
    export_dir: pathlib.Path = None
    model: keras.Model = None


def compile_model(model, optimizer, label_smoothing=0.0, jit=False, num_classes=None):
    """Compile with the project's loss and metrics (logits in, one-hot labels).

    `cross_entropy` is the plain cross-entropy (no label smoothing, no weight
    penalty), the figure to compare across runs; `loss` is what is optimised.
    """
    metrics = [
        keras.metrics.CategoricalAccuracy(name="accuracy"),
        keras.metrics.CategoricalCrossentropy(from_logits=True, name="cross_entropy"),
    ]
    if (num_classes or model.output_shape[-1]) > 5:
        metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top5_accuracy"))
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing),
        metrics=metrics,
        jit_compile=hardware.concrete_jit(jit),
    )
    return model


def build_models(
    name, num_classes, input_shape, model_options, optim, steps_per_epoch, epochs, jit=False, placement=None
):
    """(network, training model, inference model) of a registered model, ready to fit.

    The network gets the optimizer's coupled L2 penalty; the training model
    adds auxiliary-classifier losses (GoogLeNet) and is compiled with the
    project's loss and metrics; the inference model shares the weights
    without the auxiliary heads (checkpoints, exports, parameter counts).
    Call inside the strategy's scope.
    """
    network = create_model(name, num_classes=num_classes, input_shape=input_shape, **model_options)
    network = with_l2_penalty(network, coupled_weight_decay(optim))
    if placement is not None:  # --model-parallel: the same network, its towers on two devices
        network = placement.parallelize(network)
    model = training_model(network)
    optimizer = build_optimizer(optim, steps_per_epoch, epochs)
    compile_model(model, optimizer, optim.label_smoothing, jit, num_classes)
    return network, model, inference_model(network)


def _git_commit():
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=pathlib.Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _versions():
    import kerascnn

    return {
        "kerascnn": kerascnn.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "git_commit": _git_commit(),
    }


def _load_for_resume(run_dir):
    run_dir = rundir.require_run_dir(run_dir)
    if (run_dir / rundir.METRICS).exists():
        raise ConfigError(f"run {run_dir} already finished (metrics.json exists); start a new run instead")
    return run_dir, RunConfig.load(run_dir / rundir.CONFIG)


def fit(config=None, resume_dir=None, log=print, verbose=None, extra_callbacks=()):
    """Train `config` (a RunConfig), or continue the run in `resume_dir`.

    `extra_callbacks` are appended to the run's own Keras callbacks.

    Returns a `RunResult` with the run directory and its metrics.
    """
    # The run sets Keras' global mixed-precision policy (`--precision`);
    # put the caller's back, so models built after `fit` returns (by a
    # notebook, a tuner, the next test) are not silently bfloat16.
    policy = keras.mixed_precision.global_policy()
    try:
        return _fit(config, resume_dir, log, verbose, extra_callbacks)
    finally:
        keras.mixed_precision.set_global_policy(policy)


def _fit(config, resume_dir, log, verbose, extra_callbacks):
    """`fit` without restoring the global policy."""
    if resume_dir is not None:
        run_dir, config = _load_for_resume(resume_dir)
    else:
        run_dir = None
    check_model_name(config.model)
    # --weights / --init-from: the weights' own options, image size and normalisation.
    config, transfer = weights_plan.resolve(config, resumed=resume_dir is not None)
    # --model-parallel: AlexNet's towers on two devices, one replica (splits the CPU for --cpu-replicas 2).
    config, placement = parallel.plan(config)
    # --precision / --jit auto: concrete values for this machine, recorded in
    # config.json; a resumed run's config.json already holds concrete ones.
    config, auto_reasons = hardware.resolve(config)
    if config.workers:
        os.environ["TF_CONFIG"] = workers_tf_config(config.workers, config.worker_index)
    if placement is not None:
        strategy, strategy_desc = placement.strategy()
    else:
        strategy, strategy_desc = select_strategy(config.devices, config.cpu_replicas)
    replicas = strategy.num_replicas_in_sync

    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_global_policy(config.precision)

    source = open_source(
        config.data.dataset, config.data.data_dir, config.data.image_size,
        skip_bad_images=config.data.skip_bad_images,
    )
    info = source.info
    stats, pca = transfer.stats, None
    first_epoch = 0
    if resume_dir is not None:
        stats = (
            tuple(config.resolved["mean"]),
            tuple(config.resolved["std"]),
            config.resolved.get("preprocessing", {}).get("channel_order", "rgb"),
        )
        pca = config.resolved.get("augmentation", {}).get("pca")
        # The backup, not history.csv, says which epochs are done: a kill
        # between the two writes must neither skip nor repeat an epoch.
        first_epoch = cb.backup_epoch(run_dir / rundir.BACKUP)
    image_size = tuple(config.data.image_size or info.image_shape[:2])
    input_shape = (*image_size, 3)

    # Learning rate: as given, unless --scale-lr asks for the linear rule.
    optim = dataclasses.replace(config.optim, lr=scaled_learning_rate(config.optim.lr, replicas, config.scale_lr))
    if optim.lr != config.optim.lr:
        log(f"--scale-lr linear: learning rate {config.optim.lr:g} x {replicas} replicas = {optim.lr:g}")

    def build(steps_per_epoch):
        """(network, training model, inference model), built and compiled in the strategy scope."""
        with strategy.scope():
            built = build_models(
                config.model, info.num_classes, input_shape, config.model_options, optim,
                steps_per_epoch, config.epochs, config.jit, placement=placement,
            )
        work_around_multiworker_build(built[1], strategy)
        return built

    batch_size = config.data.batch_size
    if batch_size == "auto":
        if resume_dir is not None:
            batch_size = config.resolved["batch_size"]
        else:
            batch_size = find_batch_size(lambda: build(1)[1], input_shape, info.num_classes, strategy, log=log)
            keras.utils.set_random_seed(config.seed)  # the search drew from the generators
    global_batch = batch_size * replicas

    data = make_datasets(
        source, config.data, global_batch, config.seed, stats, pca, epochs=config.epochs, first_epoch=first_epoch
    )
    network, model, inference = build(data.steps_per_epoch)
    transfer_record = transfer.apply(network, config, optim.lr, first_epoch, log)
    # Read when the layers are first called in training, so setting it now is enough.
    sync_bn_layers = synchronize_batch_norm(network) if config.sync_bn else 0

    if resume_dir is None:
        config = config.replace(
            resolved={
                "source": info.name,
                "class_names": list(info.class_names),
                "num_classes": info.num_classes,
                "image_shape": list(input_shape),
                "mean": list(data.preprocessing.mean),
                "std": list(data.preprocessing.std),
                "preprocessing": data.preprocessing.to_dict(),
                # The preset actually used, and the PCA of the training pixels
                # (0-255 scale) when colour jitter is on: enough to rebuild it.
                "augmentation": dataclasses.asdict(data.augmentation),
                "num_train": data.num_train,
                "num_val": data.num_val,
                "num_test": data.num_test,
                "skipped_images": list(getattr(source, "skipped_images", ())),  # --skip-bad-images
                "strategy": strategy_desc,
                "replicas": replicas,
                "batch_size": batch_size,
                "global_batch": global_batch,
                "lr": optim.lr,
                "sync_bn_layers": sync_bn_layers,
                "model_parallel": placement.record() if placement is not None else None,  # device of each block
                "auto": auto_reasons,  # why --precision / --jit auto chose what `precision` / `jit` say
                "transfer": transfer_record,  # --weights / --init-from: layers loaded, phases
                # Keras wraps the optimizer in a LossScaleOptimizer under mixed_float16.
                "loss_scale": type(model.optimizer).__name__ == "LossScaleOptimizer",
                "steps_per_epoch": data.steps_per_epoch,
                "params": int(inference.count_params()),
                "versions": _versions(),
            }
        )

    chief = is_chief(strategy)
    scratch = None
    if not chief:
        # Other workers of a multi-worker run write to a throwaway folder.
        scratch = pathlib.Path(tempfile.mkdtemp(prefix="kerascnn-worker-"))
        run_dir = scratch
    elif run_dir is None:
        if config.run_dir:
            run_dir = pathlib.Path(config.run_dir)
            if run_dir.exists() and any(run_dir.iterdir()):
                raise ConfigError(f"--run-dir {run_dir} exists and is not empty; choose a new folder or --resume it")
            run_dir.mkdir(parents=True, exist_ok=True)
        else:
            run_dir = rundir.new_run_dir(config.model)
        config = config.replace(run_dir=str(run_dir))
        rundir.write_json(run_dir / rundir.CONFIG, config.to_dict())

    # Epochs the backup holds; rows of a later, unsaved epoch are dropped and redone.
    history = [row for row in cb.read_history(run_dir / rundir.HISTORY) if int(row["epoch"]) < first_epoch]
    best_value, _ = cb.best_so_far(history)
    stopper = cb.StopOnNonFinite()
    callbacks = [
        cb.EpochTimer(),
        stopper,
        cb.HistoryWriter(run_dir / rundir.HISTORY, history),
        cb.SafeBackupAndRestore(str(run_dir / rundir.BACKUP), delete_checkpoint=True),
        # A model-parallel run saves its single-device equivalent (kerascnn.runtime.model_parallel).
        cb.BestCheckpoint(
            run_dir / rundir.BEST, placement.checkpoint_model() if placement else inference, initial_best=best_value
        ),
        keras.callbacks.TensorBoard(str(run_dir / rundir.TENSORBOARD), profile_batch=0, write_graph=False),
    ]
    if config.optim.schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=cb.MONITOR,
                mode="max",
                factor=config.optim.lr_decay,
                patience=config.optim.plateau_patience,
                verbose=1,
            )
        )
    if config.patience:
        callbacks.append(
            cb.ResumableEarlyStopping(history, monitor=cb.MONITOR, mode="max", patience=config.patience)
        )

    # Before the history writer, which records its `backbone_frozen` column.
    callbacks[:0] = transfer.callbacks(network, model, config, data.steps_per_epoch, optim.lr)
    callbacks.extend(extra_callbacks)
    log(
        f"{'resuming' if resume_dir else 'training'} {config.model} "
        f"({inference.count_params():,} parameters) on "
        f"{info.name}: {data.num_train} train / {data.num_val} val / {data.num_test} test images "
        f"at {input_shape[0]}x{input_shape[1]}, {info.num_classes} classes"
    )
    log(
        f"{strategy_desc}: {replicas} replica{'s' if replicas > 1 else ''} x batch {batch_size} = global batch "
        f"{global_batch}, {config.precision}, lr {optim.lr:g}"
        f"{f', synchronised batch norm ({sync_bn_layers} layers)' if config.sync_bn else ''}; run directory {run_dir}"
    )
    for setting, reason in auto_reasons.items():
        # `auto` is the default: say what it chose and why, and how to opt out.
        value = config.precision if setting == "precision" else ("XLA on" if config.jit else "XLA off")
        log(f"--{setting} auto: {value} ({reason}); give --{setting} to choose")
    log(f"augmentation: {data.augmentation.describe()}")
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    try:
        try:
            read_guard(
                source,
                model.fit,
                data.train,  # one stream of the remaining epochs, each seeded by its number
                validation_data=data.val,
                epochs=config.epochs,
                initial_epoch=first_epoch,
                steps_per_epoch=data.steps_per_epoch,
                shuffle=False,
                callbacks=callbacks,
                verbose=verbose,
            )
        except Exception as e:
            if is_out_of_memory(e):
                raise OutOfMemory(out_of_memory_message(config.model, input_shape, batch_size, replicas)) from None
            raise
        if stopper.where is not None:
            epoch, batch, value = stopper.where
            raise Diverged(
                f"the loss became {value} at epoch {epoch}, batch {batch}; training stopped. "
                f"{run_dir / rundir.BEST} (the best epoch so far) and the backup of the last good epoch are kept; "
                "start a new run with a lower --lr, --clip-norm or float32 precision"
            )
        history = cb.read_history(run_dir / rundir.HISTORY)
        with strategy.scope():
            best = keras.saving.load_model(run_dir / rundir.BEST, compile=False)
            compile_model(best, build_optimizer(config.optim, data.steps_per_epoch, config.epochs))
            work_around_multiworker_build(best, strategy)
        test = read_guard(source, best.evaluate, data.test, verbose=0, return_dict=True)
        if chief:  # confusion_matrix.png/.csv, per_class_accuracy.csv
            read_guard(source, write_class_report, best, data.test, info.class_names, run_dir, config.model)
        metrics = _metrics(history, test, best)
        if data.test_tta is not None:
            tta = read_guard(source, ten_crop_metrics, best, data.test_tta)
            metrics.update({f"test_tta_{k}": v for k, v in tta.items() if k != "images"})
        if chief:
            plot_curves(history, run_dir / rundir.CURVES, title=f"{config.model} on {info.name}")
            rundir.write_json(run_dir / rundir.METRICS, metrics)
        result = RunResult(run_dir, metrics, model=best)
        tta_note = f", ten-patch {metrics['test_tta_accuracy']:.4f}" if data.test_tta is not None else ""
        log(
            f"test accuracy {metrics['test_accuracy']:.4f}{tta_note} (cross-entropy {metrics['test_loss']:.4f}); "
            f"best val accuracy {metrics['best_val_accuracy']:.4f} at epoch {metrics['best_epoch']}; "
            f"{metrics['seconds_per_epoch']:.1f} s/epoch"
        )
        if config.export and chief:
            from kerascnn.serving.export import export_model

            result.export_dir = export_model(
                best, data.preprocessing, info.class_names, config.model, config.export_dir, config.to_dict()
            )
            log(f"exported to {result.export_dir}")
        return result
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _metrics(history, test, model):
    """The summary of a finished run (metrics.json)."""
    best_val, best_epoch = cb.best_so_far(history)
    seconds = [row["epoch_seconds"] for row in history if "epoch_seconds" in row]
    steady = seconds[1:] if len(seconds) > 1 else seconds
    final_train = history[-1]["accuracy"] if history else None
    return {
        "test_loss": float(test["cross_entropy"]),
        "test_accuracy": float(test["accuracy"]),
        "test_top5_accuracy": float(test["top5_accuracy"]) if "top5_accuracy" in test else None,
        "best_val_accuracy": best_val,
        "best_epoch": None if best_epoch is None else best_epoch + 1,
        "epochs_run": len(history),
        "params": int(model.count_params()),
        "trainable_params": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
        # The first epoch includes tracing and filling the data cache.
        "seconds_per_epoch": float(np.median(steady)) if steady else None,
        "first_epoch_seconds": seconds[0] if seconds else None,
        "final_train_accuracy": final_train,
        # Train accuracy is the running mean over the last epoch, with dropout on.
        "overfitting_gap": None if final_train is None else final_train - float(test["accuracy"]),
    }
