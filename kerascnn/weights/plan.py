"""How a run starts from existing weights: `--weights`, `--init-from`, `--freeze-backbone`.

`train.fit` calls three hooks, in this order, all before the run directory
is written (so a bad file or a missing download leaves nothing behind):

1. `resolve(config)`: reads what the weights say about themselves (their
   model, builder options, image size, normalisation) and makes those the
   defaults of the run; fails early on a wrong model or a missing file.
2. `Plan.apply(network, ...)`: copies the weights into the freshly built
   network (layer by layer, shape-checked) and returns what it did, which
   goes into config.json under `resolved.transfer`.
3. `Plan.callbacks(...)`: the `--freeze-backbone` phases.

Sources of `--weights`:
- `imagenet`: keras.applications' files (`kerascnn.weights.imagenet`),
  Caffe normalisation, 224x224 unless --image-size says otherwise;
- a `.keras` file: a kerascnn weights file (`kerascnn.json` entry: model,
  model_options, num_classes, image_size, normalization) or any run's
  best.keras;
- a `.weights.h5` file saved from the same architecture;
- a run directory: its best.keras, with its config.json as the metadata.
"""

import dataclasses
import pathlib

from kerascnn.storage import rundir
from kerascnn.errors import ConfigError, DataError
from kerascnn.weights import finetune, imagenet, incremental, transfer
from kerascnn.record import RunRecord
from kerascnn.weights.archive import read_metadata

DEFAULT_FINETUNE_FRACTION = 0.1  # --finetune-lr defaults to a tenth of --lr


@dataclasses.dataclass
class Plan:
    """What `resolve` found; `apply` and `callbacks` act on it.

    Attributes:
        kind: None, "imagenet", "run", "keras", "h5" or "init_from".
        source: the --weights / --init-from value.
        normalization: {"mean", "std", "channel_order"} the weights expect, or None.
        source_config: the source run's config.json (run directories, --init-from).
        recorded: the `resolved.transfer` of a resumed run.
    """

    kind: str = None
    source: str = None
    normalization: dict = None
    source_config: dict = None
    recorded: dict = None

    @property
    def stats(self):
        """(mean, std, channel_order) for `make_datasets`, or None to measure the data."""
        if not self.normalization:
            return None
        n = self.normalization
        return tuple(float(v) for v in n["mean"]), tuple(float(v) for v in n["std"]), n.get("channel_order", "rgb")

    def apply(self, network, config, lr, first_epoch, log=print):
        """Copy the weights into `network`; return the `resolved.transfer` record (None without weights).

        A resumed run past its first epoch takes every weight from its
        backup, so nothing is loaded then.
        """
        if self.kind is None or first_epoch > 0:
            return None
        if self.kind == "resume":
            # Resumed before the first backup: load again, as the first start did.
            _, fresh = resolve(config)
            record = fresh.apply(network, config, lr, first_epoch, log)
            self.recorded = self.recorded or record
            return record
        if self.kind == "init_from":
            record = incremental.initialise(network, self.source, self.source_config, config.model)
            record["loaded"] = record["copied"]
            log(
                f"initialised from {self.source} ({record['source_model']}, Simonyan & Zisserman 2015, 3.1): "
                f"copied {', '.join(record['copied'])}; {len(record['initialised'])} layers keep their random "
                "initialisation"
            )
        else:
            arrays, desc, record = self._read(network, config)
            report = transfer.copy_by_name(network, arrays, desc, config.model)
            record.update(report.to_dict())
            log(f"weights: {desc}: {report.describe()}")
        if self.normalization:
            record["normalization"] = dict(self.normalization)
        record["phases"] = phases(config, lr)
        self.recorded = record
        return record

    def _read(self, network, config):
        if self.kind == "imagenet":
            top = imagenet.wants_top(config.model, network)
            path = imagenet.fetch(config.model, top)
            spec = imagenet.keras_weights(config.model)
            record = {
                "weights": "imagenet",
                "file": pathlib.Path(path).name,
                "url": spec.url(config.model, top),
                "keras_compatible_options": dict(spec.options),
            }
            return imagenet.read(config.model, top, path), imagenet.describe(config.model, top), record
        path = pathlib.Path(self.source)
        if self.kind == "run":
            best = path / rundir.BEST
            return transfer.read_keras_file(best), f"{best}", {"weights": str(path)}
        if self.kind == "keras":
            return transfer.read_keras_file(path), f"{path}", {"weights": str(path)}
        return transfer.read_weights_h5(path, network), f"{path}", {"weights": str(path)}

    def callbacks(self, network, model, config, steps_per_epoch, lr):
        """[FreezeBackbone] when --freeze-backbone is set (fresh or resumed run), else []."""
        if not config.freeze_backbone:
            return []
        record = self.recorded or {}
        loaded = record.get("loaded")
        if loaded is None:
            raise ConfigError("--freeze-backbone needs the layers loaded from --weights or --init-from")
        callback = finetune.FreezeBackbone(
            finetune.backbone_layers(network, loaded), config.freeze_backbone, finetune_lr(config, lr) / lr
        )
        callback.prepare(model, steps_per_epoch)
        return [callback]


def finetune_lr(config, lr):
    return config.finetune_lr if config.finetune_lr is not None else lr * DEFAULT_FINETUNE_FRACTION


def phases(config, lr):
    """The --freeze-backbone phases as recorded in config.json (epochs 1-based, inclusive)."""
    e = config.freeze_backbone
    if not e:
        return [{"epochs": [1, config.epochs], "trains": "all layers", "lr": lr}]
    out = [{"epochs": [1, min(e, config.epochs)], "trains": "new layers only (backbone frozen, BN in inference mode)", "lr": lr}]
    if e < config.epochs:
        out.append({"epochs": [e + 1, config.epochs], "trains": "all layers", "lr": finetune_lr(config, lr)})
    return out


def _merge(config, options, image_size):
    """`options` and `image_size` as defaults: what the user set wins."""
    data = config.data
    if data.image_size is None and image_size and None not in image_size:
        data = dataclasses.replace(data, image_size=tuple(int(s) for s in image_size))
    return config.replace(model_options={**(options or {}), **config.model_options}, data=data)


def _check_model(meta_model, model, source):
    if meta_model and meta_model != model:
        raise ConfigError(
            f"{source} holds weights of {meta_model}, not {model}; train `fit {meta_model} --weights {source}`"
        )


def resolve(config, resumed=False):
    """(config with the weights' defaults, Plan). Checks the source before anything is written."""
    if resumed:
        # The saved config already holds the merged options; the normalisation
        # comes from its preprocessing record. Sources are re-read only if
        # the run has no backup yet (`apply`).
        has_source = config.weights is not None or config.init_from is not None
        return config, Plan(kind="resume" if has_source else None, recorded=config.resolved.transfer)
    if config.init_from is not None:
        source = incremental.read_source(config.init_from, config.model)
        config = _merge(
            config,
            {k: v for k, v in source.get("model_options", {}).items() if k != "batch_norm"},
            RunRecord.from_dict(source.get("resolved")).image_size,
        )
        return config, Plan("init_from", config.init_from, source_config=source)
    if config.weights is None:
        return config, Plan()
    if config.weights == "imagenet":
        spec = imagenet.keras_weights(config.model)
        if config.model_options.get("batch_norm"):
            raise ConfigError(
                f"keras.applications {spec.application} has no batch normalisation; drop --batch-norm, or import "
                f"torchvision's {config.model}_bn weights with `python main.py import-weights torchvision {config.model}_bn`"
            )
        config = _merge(config, spec.options, imagenet.IMAGE_SIZE)
        return config, Plan("imagenet", "imagenet", normalization=dict(imagenet.CAFFE_NORMALIZATION))
    kind = transfer.kind_of(config.weights)
    if kind == "run":
        run_dir = rundir.require_run_dir(config.weights, need=(rundir.CONFIG, rundir.BEST))
        source = rundir.read_config(run_dir)
        _check_model(source.get("model"), config.model, config.weights)
        record = RunRecord.from_dict(source.get("resolved"))
        normalization = record.normalization()
        if normalization is None:
            raise DataError(f"{run_dir / rundir.CONFIG} has no normalisation of the images (\"resolved.mean\", "
                            f"\"resolved.std\"); {rundir.damaged(run_dir, rundir.CONFIG)}")
        mean, std, channel_order = normalization
        norm = {"mean": list(mean), "std": list(std), "channel_order": channel_order}
        config = _merge(config, source.get("model_options"), record.image_size)
        return config, Plan(kind, config.weights, normalization=norm, source_config=source)
    meta = read_metadata(config.weights) if kind == "keras" else None
    if meta is None:
        return config, Plan(kind, config.weights)
    _check_model(meta.get("model"), config.model, config.weights)
    config = _merge(config, meta.get("model_options"), meta.get("image_size"))
    return config, Plan(kind, config.weights, normalization=meta.get("normalization"))
