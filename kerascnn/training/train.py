"""Phase 8: train: `model.fit` over the remaining epochs, with its failures made plain.

Out of memory becomes one line naming the model, image size and batch (with
what to try); a loss that became NaN or infinite stops the run with the
epoch and batch where it happened, keeping the best checkpoint and the
backup of the last good epoch.
"""

import sys

from kerascnn.data.pipeline import read_guard
from kerascnn.errors import UserError
from kerascnn.runtime.batch_size import OutOfMemory, is_out_of_memory, out_of_memory_message
from kerascnn.storage import rundir


class Diverged(UserError):
    """The loss became NaN or infinite."""


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
        epoch, batch, value = run_callbacks.stopper.where
        raise Diverged(
            f"the loss became {value} at epoch {epoch}, batch {batch}; training stopped. "
            f"{run_dir / rundir.BEST} (the best epoch so far) and the backup of the last good epoch are kept; "
            "start a new run with a lower --lr, --clip-norm or float32 precision"
        )
