"""The run record: what a run resolved and measured when it started.

`fit` plans a run from a `RunConfig` (what the user asked for), then measures
and decides what only the data and the machine can say: the normalisation
statistics, the class names, the split sizes, the strategy and its replica
count, the global batch, the learning rate after scaling, why `auto` chose
what it chose. `RunRecord` holds those facts with a type for each, and is
stored in config.json under the key "resolved" (the key older runs used for
the same facts as an untyped dict), so:

- `RunRecord.from_dict` reads every config.json ever written: a key that an
  older run lacks takes the field's default (None), a key this version does
  not know is kept in `extra` and written back unchanged;
- `RunRecord.to_dict` writes the same flat JSON object as before.

Readers (evaluate, export, predict, the analysis commands, `--weights RUN_DIR`,
`--resume`) use the attributes, never string keys.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """Facts resolved when a run started (config.json "resolved").

    Attributes:
        source: description of the data (tensorflow-datasets name, folder).
        class_names: label names in label order.
        num_classes: number of classes of the last layer.
        image_shape: (height, width, channels) the model sees.
        mean, std: per-channel normalisation of the 0-255 pixels.
        preprocessing: `kerascnn.data.preprocessing.Preprocessing.to_dict()`:
            resize, crop, mean, std and channel order of evaluation and serving.
        augmentation: the training augmentation preset used and, with colour
            jitter, the PCA of the training pixels (enough to rebuild it).
        num_train, num_val, num_test: images in each split.
        skipped_images: files left out by --skip-bad-images.
        strategy: description of the tf.distribute strategy.
        replicas: replicas in sync; global_batch = batch_size x replicas.
        batch_size: per-replica batch (a number even when --batch-size auto).
        global_batch: examples per optimizer step.
        lr: the learning rate used, after --scale-lr.
        sync_bn_layers: batch-norm layers synchronised across replicas.
        model_parallel: --model-parallel: the device of each block.
        auto: why --precision / --jit auto chose what the config says.
        transfer: --weights / --init-from: what was loaded, the phases.
        loss_scale: whether Keras wrapped the optimizer in a LossScaleOptimizer.
        steps_per_epoch: optimizer steps in one epoch.
        params: parameters of the inference model.
        versions: kerascnn, TensorFlow, Keras, NumPy, Python, git commit.
        tuning_trial: the KerasTuner trial id of a model exported by `tune`.
        extra: keys of an older or newer config.json this version does not know.
    """

    source: str = None
    class_names: tuple = None
    num_classes: int = None
    image_shape: tuple = None
    mean: tuple = None
    std: tuple = None
    preprocessing: dict = None
    augmentation: dict = None
    num_train: int = None
    num_val: int = None
    num_test: int = None
    skipped_images: tuple = ()
    strategy: str = None
    replicas: int = None
    batch_size: int = None
    global_batch: int = None
    lr: float = None
    sync_bn_layers: int = None
    model_parallel: dict = None
    auto: dict = None
    transfer: dict = None
    loss_scale: bool = None
    steps_per_epoch: int = None
    params: int = None
    versions: dict = None
    tuning_trial: str = None
    extra: dict = dataclasses.field(default_factory=dict)

    _SEQUENCES = ("class_names", "image_shape", "mean", "std", "skipped_images")

    def __post_init__(self):
        # JSON gives lists; tuples keep the record hashable-looking and frozen in spirit.
        for name in self._SEQUENCES:
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))

    @classmethod
    def fields(cls):
        return [f.name for f in dataclasses.fields(cls) if f.name != "extra"]

    @classmethod
    def from_dict(cls, d):
        """A record from config.json's "resolved" object (any version; None or {} gives an empty record)."""
        d = dict(d or {})
        known = {name: d.pop(name) for name in cls.fields() if name in d}
        return cls(**known, extra=d)

    def to_dict(self):
        """The flat JSON object of config.json's "resolved" ({} for a run not started yet)."""
        values = {name: getattr(self, name) for name in self.fields()}
        if all(v is None or v == () for v in values.values()):
            return dict(self.extra)
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()}
        out.update(self.extra)
        return out

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @property
    def image_size(self):
        """(height, width), or None when the record has no image shape."""
        return None if self.image_shape is None else tuple(self.image_shape[:2])

    def normalization(self):
        """(mean, std, channel_order) a resumed run or a transfer reuses instead of measuring the data."""
        prep = self.preprocessing or {}
        mean = prep.get("mean", self.mean)
        std = prep.get("std", self.std)
        if mean is None or std is None:
            return None
        return tuple(float(v) for v in mean), tuple(float(v) for v in std), prep.get("channel_order", "rgb")
