"""Phase 3: the data of a run: source, batch size, and the three pipelines.

The source is opened (and every image location checked) before the run
directory exists, so a wrong path leaves nothing on disk. A resumed run
reuses the normalisation and colour-jitter PCA its record holds, and
starts the training stream at the epoch its backup reached, so it sees
exactly the batches an uninterrupted run would have seen.
"""

import dataclasses

import keras

from kerascnn.data.choose_source import open_source
from kerascnn.data.pipeline import Datasets, make_datasets
from kerascnn import faults
from kerascnn.runtime.batch_size import find_batch_size
from kerascnn.storage import rundir
from kerascnn.training import callbacks as cb
from kerascnn.training.build import compile_in_scope


@dataclasses.dataclass
class RunData:
    """The data side of a run.

    Attributes:
        source: the opened `DataSource`.
        input_shape: (height, width, 3) the model takes.
        batch_size: per-replica batch (a number, also for --batch-size auto).
        global_batch: batch_size x replicas.
        datasets: the `Datasets` (train stream, val, test, preprocessing, ...).
        first_epoch: epochs already done (a resumed run), 0 otherwise.
    """

    source: object
    input_shape: tuple
    batch_size: int
    global_batch: int
    datasets: Datasets
    first_epoch: int = 0

    @property
    def info(self):
        return self.source.info


def open_run_source(config):
    """The `DataSource` of a RunConfig (checks the location and, for folders, every file)."""
    d = config.data
    return open_source(d.dataset, d.data_dir, d.image_size, skip_bad_images=d.skip_bad_images)


def input_shape_of(config, info):
    return (*tuple(config.data.image_size or info.image_shape[:2]), 3)


def resolve_batch_size(plan, runtime, info, input_shape, log=print):
    """The per-replica batch: as given, the resumed run's, or the largest that fits (`auto`)."""
    config = plan.config
    if config.data.batch_size != "auto":
        return config.data.batch_size
    if plan.resumed:
        return config.resolved.batch_size
    batch = find_batch_size(
        lambda: compile_in_scope(plan, runtime, info.num_classes, input_shape, 1)[1],
        input_shape, info.num_classes, runtime.strategy, log=log,
    )
    keras.utils.set_random_seed(config.seed)  # the search drew from the generators
    return batch


def prepare_data(plan, runtime, log=print):
    """The `RunData` of a planned run under its runtime."""
    config = plan.config
    source = open_run_source(config)
    faults.point("data.opened")
    input_shape = input_shape_of(config, source.info)
    stats = plan.transfer.stats
    pca, first_epoch = None, 0
    if plan.resumed:
        stats = config.resolved.normalization()
        pca = (config.resolved.augmentation or {}).get("pca")
        # The backup, not history.csv, says which epochs are done: a kill
        # between the two writes must neither skip nor repeat an epoch.
        first_epoch = cb.backup_epoch(plan.resume_dir / rundir.BACKUP)
    batch_size = resolve_batch_size(plan, runtime, source.info, input_shape, log)
    global_batch = batch_size * runtime.replicas
    datasets = make_datasets(
        source, config.data, global_batch, config.seed, stats, pca, epochs=config.epochs, first_epoch=first_epoch
    )
    return RunData(source, input_shape, batch_size, global_batch, datasets, first_epoch)
