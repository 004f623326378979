"""Phase 9: evaluate the best checkpoint on the test split, and summarise the run.

The model that is tested is `best.keras`, the epoch with the best
*validation* accuracy, never one chosen on the test set. metrics.json's
figures are computed here from history.csv and that evaluation.
"""

import keras
import numpy as np

from kerascnn.analysis.confusion import write_class_report_from_counts
from kerascnn.analysis.profile import profile_model
from kerascnn.data.pipeline import read_guard
from kerascnn import faults
from kerascnn.runtime.strategies import work_around_distributed_build
from kerascnn.serving.tta import score_with_flips, ten_crop_metrics
from kerascnn.storage import rundir
from kerascnn.storage.history import read_history
from kerascnn.training import callbacks as cb
from kerascnn.training.build import compile_model
from kerascnn.training.optim import build_optimizer


def load_best(config, run_dir, runtime, steps_per_epoch, model=None):
    """The weights of best.keras, compiled with the run's loss and metrics inside the strategy scope.

    With `model` (the run's own inference network, already built), best.keras'
    weights are loaded into it: the tested weights are the file's either way,
    and the network is not built a second time from the file's config (seconds
    for GoogLeNet, in every run). Without it the whole file is loaded.
    """
    with runtime.scope():
        if model is None:
            best = keras.saving.load_model(run_dir / rundir.BEST, compile=False)
        else:
            best = model
            best.load_weights(run_dir / rundir.BEST)
        compile_model(best, build_optimizer(config.optim, steps_per_epoch, config.epochs))
        work_around_distributed_build(best, runtime.strategy)
    return best


def model_macs(model):
    """Multiply-accumulates per image of `model` (`analysis.profile`), or None where it cannot count them.

    Counted once when the run is tested, from the model already in memory, so
    that `compare` and a study's report read it from metrics.json instead of
    rebuilding the network (seconds for GoogLeNet) to count it again.
    """
    try:
        return int(profile_model(model).macs)
    except (ValueError, TypeError, AttributeError):  # an input size unknown until called
        return None


def summarize(history, test, model):
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
        # The epoch whose model was tested: chosen on validation data, or the last (--val-split 0).
        "model_epoch": len(history) if best_epoch is None else best_epoch + 1,
        "params": int(model.count_params()),
        "macs": model_macs(model),
        "trainable_params": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
        # The first epoch includes tracing and filling the data cache.
        "seconds_per_epoch": float(np.median(steady)) if steady else None,
        "first_epoch_seconds": seconds[0] if seconds else None,
        "final_train_accuracy": final_train,
        # Train accuracy is the running mean over the last epoch, with dropout on.
        "overfitting_gap": None if final_train is None else final_train - float(test["accuracy"]),
    }


def evaluate_best(config, run_dir, runtime, data, network=None):
    """(metrics, best model): the best checkpoint on the test split, plain and with flips (and ten patches with --tta).

    One pass over the test split gives the plain metrics, the confusion
    matrix and the flip test-time augmentation (reported beside the plain
    figure, never instead of it).
    """
    source, datasets, num_classes = data.source, data.datasets, data.info.num_classes
    best = load_best(config, run_dir, runtime, datasets.steps_per_epoch, network)
    faults.point("evaluation")
    plain, flipped = read_guard(source, score_with_flips, best, datasets.test, num_classes)
    test = plain.result()
    if num_classes <= 5:  # as the compiled metrics: top-5 only means something above five classes
        test.pop("top5_accuracy")
    if runtime.chief:  # confusion_matrix.png/.csv, per_class_accuracy.csv
        write_class_report_from_counts(plain.confusion, data.info.class_names, run_dir, config.model)
    metrics = summarize(read_history(run_dir / rundir.HISTORY), test, best)
    flip = flipped.result()
    metrics.update({
        "test_flip_accuracy": flip["accuracy"],
        "test_flip_top5_accuracy": flip["top5_accuracy"],
        "test_flip_loss": flip["cross_entropy"],
    })
    if datasets.test_tta is not None:
        tta = read_guard(source, ten_crop_metrics, best, datasets.test_tta)
        metrics.update({f"test_tta_{k}": v for k, v in tta.items() if k != "images"})
    return metrics, best
