"""Phase 8: train: `model.fit` over the remaining epochs, with its failures made plain.

Out of memory becomes one line naming the model, image size and batch (with
what to try); a loss that became NaN or infinite stops the run with the
epoch and batch where it happened (or the epoch, when only the validation
saw it), keeping the best checkpoint and the backup of the last good epoch.
A run whose tested model scores NaN is diverged too (`check_finite_result`):
it never reports NaN figures as its result.
"""

import math
import numbers
import sys

from kerascnn.data.pipeline import read_guard
from kerascnn.errors import UserError
from kerascnn.runtime.batch_size import OutOfMemory, is_out_of_memory, out_of_memory_message
from kerascnn.storage import rundir


class Diverged(UserError):
    """The loss (training, validation or test) became NaN or infinite."""


ADVICE = "start a new run with a lower --lr, --clip-norm or float32 precision"


def train(config, run_dir, data, built, run_callbacks, verbose=None):
    """Fit `built.model` on `data` from `data.first_epoch` to `config.epochs`."""
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    try:
        read_guard(
            data.source,
            built.model.fit,
            data.datasets.train,  # one stream of the remaining epochs, each seeded by its number
            validation_data=data.datasets.val,
            epochs=config.epochs,
            initial_epoch=data.first_epoch,
            steps_per_epoch=data.datasets.steps_per_epoch,
            shuffle=False,
            callbacks=run_callbacks.callbacks,
            verbose=verbose,
        )
    except Exception as e:
        if is_out_of_memory(e):
            message = out_of_memory_message(config.model, data.input_shape, data.batch_size, data.global_batch // data.batch_size)
            raise OutOfMemory(message) from None
        raise
    if run_callbacks.stopper.where is not None:
        epoch, batch, value, key = run_callbacks.stopper.where
        what = "the loss" if key == "loss" else f"the {_figure(key)}"
        at = f"epoch {epoch}" if batch is None else f"epoch {epoch}, batch {batch}"
        if (run_dir / rundir.BEST).exists():
            kept = f"{run_dir / rundir.BEST} (the best epoch so far) and the backup of the last good epoch are kept"
        else:  # diverged in its first epoch: nothing good to keep
            kept = f"no epoch of {run_dir} ended well, so it holds no checkpoint"
        raise Diverged(f"{what} became {value} at {at}; training stopped. {kept}; {ADVICE}")


def _figure(key):
    """The words of a figure of the logs: val_loss is "validation loss", test_accuracy "test accuracy"."""
    return key.replace("val_", "validation ", 1).replace("_", " ")


def check_finite_result(metrics, run_dir):
    """Diverged if a test figure of `metrics` (the run's summary) is NaN or infinite.

    A model that scores NaN on the test split diverged (e.g. after its last
    validation, or in a run without one); its figures are not a result, so
    metrics.json is not written.
    """
    for key, value in metrics.items():
        number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if key.startswith("test_") and number and not math.isfinite(float(value)):
            raise Diverged(
                f"the {_figure(key)} of the tested model (epoch {metrics.get('model_epoch')}) is {value}: "
                f"the run diverged and has no result; {run_dir} keeps its history; {ADVICE}"
            )
