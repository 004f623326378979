"""Phase 10: publish a finished run: curves, the export, metrics.json (written last).

metrics.json marks a run as finished, so it is written after everything
else the run leaves, the export included.
"""

import dataclasses
import pathlib

import keras

from kerascnn.analysis.curves import plot_curves
from kerascnn.storage import rundir
from kerascnn.storage.history import read_history
from kerascnn.training.train import check_finite_result


@dataclasses.dataclass
class RunResult:
    """What `fit` returns: where the run is, its metrics, the best model, the export."""

    run_dir: pathlib.Path
    metrics: dict
    export_dir: pathlib.Path = None
    model: keras.Model = None


def describe_metrics(metrics, tta):
    tta_note = f", ten-patch {metrics['test_tta_accuracy']:.4f}" if tta else ""
    return (
        f"test accuracy {metrics['test_accuracy']:.4f} (with flips {metrics['test_flip_accuracy']:.4f}{tta_note}; "
        f"cross-entropy {metrics['test_loss']:.4f}); "
        + (
            f"best val accuracy {metrics['best_val_accuracy']:.4f} at epoch {metrics['best_epoch']}; "
            if metrics["best_val_accuracy"] is not None
            else f"no validation set: the model of the last epoch ({metrics['epochs_run']}); "
        )
        + f"{metrics['seconds_per_epoch']:.1f} s/epoch"
    )


def publish(config, run_dir, runtime, data, metrics, best, log=print):
    """Write the chief's curves.png, (with --export) the SavedModel, then metrics.json; the `RunResult`.

    The export comes before metrics.json: a run killed while exporting is not
    finished yet, so `fit --resume` tests and exports it again; one killed
    after its export was published and before metrics.json reuses that
    export instead of publishing the same model twice (`find_export`).
    """
    check_finite_result(metrics, run_dir)  # NaN figures are a diverged run, never a result
    result = RunResult(run_dir, metrics, model=best)
    if not runtime.chief:
        log(describe_metrics(metrics, data.datasets.test_tta is not None))
        return result
    plot_curves(read_history(run_dir / rundir.HISTORY), run_dir / rundir.CURVES,
                title=f"{config.model} on {data.info.name}")
    if config.export:
        from kerascnn.serving.export import export_model, find_export

        # Only a resumed run can find one: a new run directory has no export yet.
        result.export_dir = find_export(pathlib.Path(config.export_dir) / config.model, run_dir)
        if result.export_dir is not None:
            log(f"already exported to {result.export_dir} before the interruption: kept, not exported again")
        else:
            result.export_dir = export_model(
                best, data.datasets.preprocessing, data.info.class_names, config.model, config.export_dir,
                config.to_dict(), serving_precision=config.serving_precision, run_dir=run_dir, origin="fit",
            )
    rundir.write_json(run_dir / rundir.METRICS, metrics)
    log(describe_metrics(metrics, data.datasets.test_tta is not None))
    if result.export_dir is not None:
        log(f"exported to {result.export_dir}")
    return result
