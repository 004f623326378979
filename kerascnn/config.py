"""Run configuration: frozen dataclasses, validated on creation, to/from JSON.

CLI flags default to `None`; `RunConfig.from_flags` keeps only the flags the
user set, so every default lives here, once. The resolved configuration (with
what was measured at start-up: normalisation statistics, class names, strategy)
is written to the run directory as `config.json` and is enough to rebuild the
run.
"""

import dataclasses
import json
import pathlib

from kerascnn.validation import (
    Either, Number, Shape, interval, non_negative_float, non_negative_int, positive_float, positive_int, rate,
)
from kerascnn.errors import ConfigError
from kerascnn.recipes import WARMUP_SCHEDULES, get_recipe
from kerascnn.record import RunRecord

# The cifar augmentation's padding, so its crop's largest shift (He et al. 2016, section 4.2).
CIFAR_PAD = 4

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "plateau", "cosine", "onecycle")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16", "auto")
# What an export's serving signature computes in (kerascnn.serving.precision).
SERVING_PRECISIONS = ("float32", "bfloat16", "trained")
# Augmentation presets (kerascnn.data.augment): None picks `cifar` for inputs
# of 64 pixels or less and `alexnet` for larger ones.
AUGMENT_PRESETS = ("none", "cifar", "alexnet", "inception")
PCA_SCALES = ("eigenvalue", "stddev")
# Which images the augmentation's flip mirrors (kerascnn.data.augment): a random
# half every epoch, airbench's alternating flip, or none.
FLIPS = ("random", "alternating", "none")
# Learning rate when --lr is not given: the VGG/AlexNet papers' 0.01 for SGD,
# the Adam paper's 1e-3 for the adaptive methods.
DEFAULT_LR = {"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}
# The file a run directory keeps its RunConfig in (`kerascnn.storage.rundir.CONFIG`).
CONFIG_FILE = "config.json"


# The kind of value of every numeric setting (`kerascnn.validation`): checked when
# a config is made, and by the CLI flag of the same name (`kerascnn.cli.flags`),
# so each bound is written here once. NaN, infinities and booleans are never numbers.
KINDS = {
    # DataConfig
    "image_size": Shape(2, "one or two positive integers"),
    "val_split": interval(0, 1, high_open=True, expected="a fraction in [0, 1) (0: no validation set)"),
    "limit_train": Either(
        "a count >= 1 or a fraction in (0, 1]", positive_int, interval(0, 1, low_open=True)
    ),
    "batch_size": Either("a positive integer or auto", positive_int, words=("auto",)),
    "pca_sigma": non_negative_float,
    "cutout": Number("an integer >= 0 (pixels)", integer=True, low=0),
    "translate": Number("an integer >= 0 (pixels)", integer=True, low=0),
    "random_erasing": interval(0, 1, expected="a probability in [0, 1]"),
    # OptimConfig
    "lr": positive_float,
    "momentum": rate,
    "weight_decay": non_negative_float,
    "warmup_epochs": non_negative_float,
    "final_lr_fraction": interval(0, 1, high_open=True, expected="a fraction of the peak in [0, 1)"),
    "initial_lr_fraction": interval(0, 1, high_open=True, expected="a fraction of the peak in [0, 1)"),
    "step_epochs": positive_int,
    "lr_decay": interval(0, 1, low_open=True, high_open=True),
    "plateau_patience": positive_int,
    "label_smoothing": rate,
    "clip_norm": positive_float,
    "ema": interval(0, 1, low_open=True, high_open=True, expected="a number in (0, 1), e.g. 0.999"),
    "lookahead": positive_int,
    "bn_bias_lr_scale": positive_float,
    # RunConfig
    "epochs": positive_int,
    "patience": positive_int,
    # numpy and Python's `random` take seeds below 2**32.
    "seed": interval(0, 2**32, high_open=True, integer=True, expected="an integer in [0, 2**32)"),
    "cpu_replicas": positive_int,
    "worker_index": non_negative_int,
    "freeze_backbone": Number("a number of epochs >= 0", integer=True, low=0),
    "whiten_bias_epochs": Number("a number of epochs >= 0", integer=True, low=0),
    "finetune_lr": positive_float,
    # model_options (the builders check them again: `kerascnn.models.common`)
    "dropout": rate,
    "width_multiplier": positive_float,
}
# Settings whose None means "not set" (a default chosen later, or the feature off).
OPTIONAL = {
    "image_size", "limit_train", "lr", "clip_norm", "ema", "lookahead", "patience", "cpu_replicas", "worker_index",
    "finetune_lr", "dropout", "width_multiplier",
}


def check_kinds(owner, names):
    """Check the settings `names` of `owner` (a config) against `KINDS`; ConfigError on the first bad one."""
    for name in names:
        value = owner[name] if isinstance(owner, dict) else getattr(owner, name)
        if value is None and name in OPTIONAL:
            continue
        value = KINDS[name](name, value)
        if not isinstance(owner, dict) and value is not getattr(owner, name):
            object.__setattr__(owner, name, value)  # normalised: a shape as a tuple


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are batched.

    Attributes:
        dataset: tensorflow-datasets name or "synthetic"; None means cifar10
            unless `data_dir` is given.
        data_dir: an image folder (train/<class>/, test/<class>/) or a
            CIFAR-10 binary archive or folder.
        image_size: (height, width) images are resized to; None keeps the
            data's own size.
        val_split: fraction of the training split held out for validation;
            0 trains on all of it and keeps the last epoch's model (the test
            set never chooses a model).
        limit_train: use only this many training examples (an int), or this
            fraction of them (a float in (0, 1]); None uses all.
        batch_size: per-replica batch; the global batch is this times the
            number of replicas in sync. "auto" finds the largest power of
            two that trains on the device (`kerascnn.runtime.batch_size`).
        augment: training augmentation preset (`AUGMENT_PRESETS`); None
            picks `cifar` up to 64 pixels and `alexnet` above.
        pad_mode: "reflect" or "zero" padding of the `cifar` preset's crop.
        translate: pixels the `cifar` preset pads each side by before cropping
            back, so the largest shift (4 in He et al. 2016, section 4.2; 2 in
            the airbench recipes; 0 leaves the flip alone).
        pca_jitter: AlexNet's PCA colour jitter on (True) or off (False);
            None leaves it to the preset (on for `alexnet` only).
        pca_sigma: standard deviation of the jitter's alpha (0.1 in the paper).
        pca_scale: "eigenvalue" (the paper's alpha * lambda) or "stddev"
            (alpha * sqrt(lambda)); see `kerascnn.layers.PCAColorJitter`.
        cutout: side of a square zeroed at a random place (DeVries & Taylor
            2017); 0 disables.
        random_erasing: probability of erasing a random rectangle (Zhong et
            al. 2020); 0 disables.
        flip: which training images the preset's flip mirrors (`FLIPS`):
            "random" (each with probability 1/2, every epoch anew), "alternating"
            (airbench's: a random half in the first epoch, then each image
            the other way round from the epoch before; Jordan 2024, 3.6) or
            "none".
        tta: at test time average the predictions of the paper's ten patches
            (corners and centre, with their reflections).
        skip_bad_images: leave out image files that cannot be decoded
            (counting and naming them) instead of stopping the run.
    """

    dataset: str = None
    data_dir: str = None
    image_size: tuple = None
    val_split: float = 0.1
    limit_train: float = None
    batch_size: int = 128
    augment: str = None
    pad_mode: str = "reflect"
    translate: int = CIFAR_PAD
    pca_jitter: bool = None
    pca_sigma: float = 0.1
    pca_scale: str = "stddev"
    cutout: int = 0
    random_erasing: float = 0.0
    flip: str = "random"
    tta: bool = False
    skip_bad_images: bool = False

    def __post_init__(self):
        if self.dataset is not None and self.data_dir is not None:
            raise ConfigError("give either --dataset or --data-dir, not both")
        check_kinds(self, (
            "batch_size", "pca_sigma", "cutout", "translate", "random_erasing", "val_split", "limit_train",
            "image_size",
        ))
        if self.augment is not None and self.augment not in AUGMENT_PRESETS:
            raise ConfigError(
                f"unknown augmentation preset {self.augment!r}; choose one of {', '.join(AUGMENT_PRESETS)}"
            )
        if self.pad_mode not in ("reflect", "zero"):
            raise ConfigError(f"pad_mode must be reflect or zero. Received: pad_mode={self.pad_mode}")
        if self.pca_scale not in PCA_SCALES:
            raise ConfigError(f"pca_scale must be one of {', '.join(PCA_SCALES)}. Received: pca_scale={self.pca_scale}")
        if self.flip not in FLIPS:
            raise ConfigError(f"flip must be one of {', '.join(FLIPS)}. Received: flip={self.flip}")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Optimizer, learning-rate schedule and regularisation.

    Attributes:
        optimizer: sgd (with `momentum`, optional Nesterov), adam, adamw, rmsprop.
        lr: peak learning rate; None takes `DEFAULT_LR[optimizer]`.
        momentum: SGD momentum (0.9 in both papers).
        nesterov: Nesterov momentum for SGD.
        weight_decay: coupled L2 decay, `+ weight_decay * w` in each kernel's
            gradient (0.0005 in both papers); see `kerascnn.training.optim` for
            how it is applied per optimizer.
        schedule: constant, step (times `lr_decay` every `step_epochs`),
            plateau (times `lr_decay` when validation accuracy stalls for
            `plateau_patience` epochs, as the AlexNet and VGG papers did) or
            cosine (to 0 over the run, after `warmup_epochs` linear warm-up) or
            onecycle (linear from 0 to `lr` over `warmup_epochs`, then linear to 0).
        warmup_epochs: linear warm-up to `lr`, from `initial_lr_fraction * lr`
            (not with plateau).
        initial_lr_fraction: where the warm-up of cosine and onecycle starts,
            as a fraction of `lr` (0: from zero; airbench's triangle rises
            from 0.2 of its peak).
        final_lr_fraction: where cosine and onecycle end, as a fraction of
            `lr` (0: at zero; airbench's one-cycle ends at 0.07 of its peak,
            with its weight average taken over the steps at that rate).
        step_epochs: epochs between decays for the step schedule.
        lr_decay: factor of the step and plateau schedules (the papers' 0.1).
        plateau_patience: epochs without improvement before a plateau decay.
        label_smoothing: Szegedy et al. 2016 label smoothing.
        clip_norm: clip the data gradients to this global norm (the weight
            decay is added after, as in PyTorch); None disables.
        ema: decay per step of an exponential moving average of the weights
            (Polyak & Juditsky 1992; the weight averaging of the fast CIFAR-10
            recipes): `avg = ema * avg + (1 - ema) * w` after every step, and the
            averaged weights are the ones validated, checkpointed, tested and
            exported, with batch-norm statistics recomputed for them
            (`kerascnn.training.averaging`). None disables.
        lookahead: K of Lookahead (Zhang et al. 2019) with airbench's
            schedule: every K steps the weights move to a slow average,
            `slow = d * slow + (1 - d) * w; w = slow`, d rising as
            0.95^K (t/T)^3 (`kerascnn.training.lookahead`). Unlike `ema` it
            acts on training. None disables.
        bn_bias_lr_scale: the batch-norm offsets (beta) learn at this times the
            learning rate (airbench's bias scaler, 64 there;
            `kerascnn.training.norm_parameters`); 1 treats them like every weight.
        freeze_bn_scale: the batch-norm scales (gamma) are not trained and
            stay at their initial value (airbench's BatchNorm without weight).
        decay_norm_and_bias: the coupled weight decay reaches every trained
            weight, not only the kernels: biases and batch-norm offsets and
            scales too, as PyTorch's `weight_decay` does to a parameter group
            (and airbench to all it trains); offsets learning at
            `bn_bias_lr_scale` S take wd / S, so that each step shrinks them by
            lr * wd like the rest (`kerascnn.training.weight_decay`).
    """

    optimizer: str = "sgd"
    lr: float = None
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: int = 0
    final_lr_fraction: float = 0.0
    initial_lr_fraction: float = 0.0
    step_epochs: int = 30
    lr_decay: float = 0.1
    plateau_patience: int = 5
    label_smoothing: float = 0.0
    clip_norm: float = None
    ema: float = None
    lookahead: int = None
    bn_bias_lr_scale: float = 1.0
    freeze_bn_scale: bool = False
    decay_norm_and_bias: bool = False

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
            )
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}"
            )
        if self.lr is None:
            object.__setattr__(self, "lr", DEFAULT_LR[self.optimizer])
        check_kinds(self, (
            "lr", "weight_decay", "warmup_epochs", "final_lr_fraction", "initial_lr_fraction", "step_epochs",
            "plateau_patience",
            "momentum", "lr_decay", "label_smoothing", "clip_norm", "ema", "lookahead",
            "bn_bias_lr_scale",
        ))
        if self.ema is not None and self.lookahead is not None:
            raise ConfigError(
                "--ema and --lookahead both average the weights (one watching training, one acting on it); give one"
            )
        if self.final_lr_fraction and self.schedule not in WARMUP_SCHEDULES:
            raise ConfigError(
                f"--final-lr-fraction works with --schedule cosine or onecycle. Received: schedule={self.schedule}"
            )
        if self.decay_norm_and_bias and self.optimizer == "adamw":
            raise ConfigError(
                "--decay-norm-and-bias extends the coupled decay of sgd, adam and rmsprop; adamw decays on its own "
                "and leaves biases and batch-norm parameters out: give another --optimizer or drop the flag"
            )
        if self.decay_norm_and_bias and not self.weight_decay:
            raise ConfigError(
                "--decay-norm-and-bias extends the weight decay to biases and batch-norm parameters; with "
                "--weight-decay 0 there is none: give --weight-decay above 0 or drop the flag"
            )
        if self.initial_lr_fraction and (self.schedule not in WARMUP_SCHEDULES or not self.warmup_epochs):
            raise ConfigError(
                "--initial-lr-fraction is where a warm-up starts; it needs --schedule cosine or onecycle with "
                "--warmup-epochs above 0 (without a warm-up, give --initial-lr-fraction 0 too). "
                f"Received: schedule={self.schedule}, warmup_epochs={self.warmup_epochs}"
            )
        if self.warmup_epochs and self.schedule not in WARMUP_SCHEDULES:
            raise ConfigError(
                f"--warmup-epochs works with --schedule cosine or onecycle. Received: schedule={self.schedule}"
            )


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that determines a training run.

    Attributes:
        model: registry name.
        model_options: keyword arguments for the builder (dropout, batch_norm,
            head, width_multiplier, ...); unset options keep the model's defaults.
        data, optim: see `DataConfig` and `OptimConfig`.
        epochs: maximum number of epochs.
        patience: early stopping after this many epochs without a better
            validation accuracy; None trains all epochs.
        precision: float32, mixed_float16, mixed_bfloat16, or "auto", the
            default: what `kerascnn.runtime.hardware` picks for this machine (mixed
            precision where it has fast low-precision units, float32
            elsewhere); `fit` records the concrete value in config.json, and
            --resume reuses it. Give float32 for bit-for-bit float32 runs.
        jit: compile the train step with XLA: True, False or "auto", the
            default (on for GPUs, off on CPUs, as `kerascnn.runtime.hardware` says).
        seed: seeds weights, the validation split, shuffling and dropout.
        devices: "auto" (all GPUs when several, else the default device),
            "cpu", "all", a GPU count ("2") or a list of GPU indices ("0,2").
        cpu_replicas: split the CPU into this many logical devices and train
            on them with MirroredStrategy (tests the multi-replica path
            without GPUs).
        model_parallel: AlexNet's two towers on two devices (two GPUs, or two
            CPU devices with cpu_replicas=2), one replica; see `kerascnn.runtime.model_parallel`.
        sync_bn: synchronised batch norm: statistics over the global batch
            rather than each replica's share.
        scale_lr: "linear" multiplies the learning rate by the number of
            replicas (Goyal et al. 2017); None leaves it as given.
        workers, worker_index: a multi-worker cluster given on the command
            line ("host:port,host:port", this process's index; worker 0 is
            the chief) instead of TF_CONFIG.
        run_dir: where the run writes; None makes runs/<model>-<timestamp>.
        export: export a SavedModel to saved_models/ when training ends.
        export_dir: root of exports.
        serving_precision: what the export's signature computes in: float32,
            bfloat16 or as trained (`kerascnn.serving.precision`).
        weights: start from pretrained weights: "imagenet" (keras.applications),
            a .keras / .weights.h5 file or a run directory (`kerascnn.weights.plan`).
        init_from: a shallower VGG run to initialise a deeper VGG from
            (Simonyan & Zisserman 2015, section 3.1; `kerascnn.weights.incremental`).
        freeze_backbone: train only the new layers for this many epochs, then
            all layers at `finetune_lr` (`kerascnn.weights.finetune`); 0 = off.
        finetune_lr: learning rate after the frozen epochs; None = lr / 10.
        whiten: initialise the first convolution as a patch-whitening
            transform of the training images and freeze it (Jordan 2024,
            airbench; `kerascnn.training.whitening`): a new run computes it,
            a resumed one restores it with its weights.
        whiten_bias_epochs: with `whiten`, the whitening layer's bias trains
            for this many first epochs and is frozen after them (airbench: 3;
            its kernel stays frozen throughout); 0 keeps the bias at 0.
        recipe: the `kerascnn.recipes` recipe the settings started from
            (None: built directly, not from a recipe); the other fields hold
            every value as resolved.
        extensions: every time `fit --resume RUN_DIR --epochs N` raised the
            run's budget, in order: {"from_epochs", "to_epochs", "schedule",
            ...} (`kerascnn.training.extension`); the first `from_epochs` is
            the budget the run started with, the last `to_epochs` is `epochs`.
        replayed_from: a run started with `fit --config PATH`: {"config": the
            config.json it replays, "run_dir": that run's folder, "overrides":
            the settings given beside it}; None otherwise.
        resolved: the `RunRecord` of what the run resolved and measured when it
            started (filled by `fit`; empty before).
    """

    model: str
    model_options: dict = dataclasses.field(default_factory=dict)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    epochs: int = 30
    patience: int = None
    precision: str = "auto"
    jit: bool = "auto"
    seed: int = 0
    devices: str = "auto"
    cpu_replicas: int = None
    model_parallel: bool = False
    sync_bn: bool = False
    scale_lr: str = None
    workers: str = None
    worker_index: int = None
    run_dir: str = None
    export: bool = False
    export_dir: str = "saved_models"
    serving_precision: str = "float32"
    weights: str = None
    init_from: str = None
    freeze_backbone: int = 0
    finetune_lr: float = None
    whiten: bool = False
    whiten_bias_epochs: int = 0
    recipe: str = None
    extensions: tuple = ()
    replayed_from: dict = None
    resolved: RunRecord = dataclasses.field(default_factory=RunRecord)

    def __post_init__(self):
        check_kinds(
            self, (
                "epochs", "patience", "seed", "cpu_replicas", "worker_index", "freeze_backbone", "finetune_lr",
                "whiten_bias_epochs",
            )
        )
        if not isinstance(self.model_options, dict):
            raise ConfigError(f"model_options must be a mapping. Received: model_options={self.model_options}")
        object.__setattr__(
            self, "model_options", {k: val for k, val in self.model_options.items() if val is not None}
        )
        if self.optim.freeze_bn_scale and self.model_options.get("zero_init_residual"):
            raise ConfigError(
                "--freeze-bn-scale would keep zero_init_residual's zero scales at zero (every residual branch "
                "constant); drop one of the two"
            )
        if self.optim.freeze_bn_scale and self.freeze_backbone:
            raise ConfigError(
                "--freeze-bn-scale does not combine with --freeze-backbone (unfreezing the backbone trains its "
                "batch-norm scales again); drop one of the two"
            )
        check_kinds(self.model_options, [k for k in ("dropout", "width_multiplier") if k in self.model_options])
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}"
            )
        if self.jit not in (True, False, "auto"):
            raise ConfigError(f"jit must be on, off or auto. Received: jit={self.jit}")
        if self.model_parallel not in (True, False):
            raise ConfigError(f"model_parallel must be true or false. Received: model_parallel={self.model_parallel}")
        if self.serving_precision not in SERVING_PRECISIONS:
            raise ConfigError(f"unknown serving precision {self.serving_precision!r}; choose one of "
                              f"{', '.join(SERVING_PRECISIONS)}")
        if self.scale_lr not in (None, "none", "linear"):
            raise ConfigError(f"scale_lr must be linear or none. Received: scale_lr={self.scale_lr}")
        if (self.workers is None) != (self.worker_index is None):
            raise ConfigError("--workers and --worker-index go together: give both or neither")
        if self.weights is not None and self.init_from is not None:
            raise ConfigError("give either --weights or --init-from, not both")
        if not isinstance(self.whiten, bool):
            raise ConfigError(f"whiten must be true or false. Received: whiten={self.whiten}")
        if self.whiten and (self.weights is not None or self.init_from is not None):
            # The whitening would overwrite the loaded first layer and freeze it.
            raise ConfigError("--whiten computes the first convolution from the data; it does not combine with "
                              "--weights or --init-from, which load it")
        if self.whiten_bias_epochs and not self.whiten:
            raise ConfigError(
                "--whiten-bias-epochs trains the bias of the whitening layer; it needs --whiten "
                "(with --no-whiten, give --whiten-bias-epochs 0 too)"
            )
        if self.whiten and self.model_parallel:
            raise ConfigError("--whiten does not combine with --model-parallel; drop one of them")
        if self.freeze_backbone and self.weights is None and self.init_from is None:
            raise ConfigError("--freeze-backbone needs --weights or --init-from (the backbone to freeze)")
        if self.recipe is not None:
            get_recipe(self.model, self.recipe)
        if self.data.val_split == 0 and (self.patience or self.optim.schedule == "plateau"):
            raise ConfigError(
                "--val-split 0 leaves no validation set for --patience or --schedule plateau to watch; "
                "drop them or hold out a validation split"
            )
        if not isinstance(self.resolved, RunRecord):  # a dict from config.json, any version
            object.__setattr__(self, "resolved", RunRecord.from_dict(self.resolved))
        object.__setattr__(self, "extensions", tuple(dict(e) for e in self.extensions or ()))
        self._check_extensions()

    def _check_extensions(self):
        """Extensions chain from the first budget to `epochs`, each raising it."""
        budget = None
        for ext in self.extensions:
            start, end = ext.get("from_epochs"), ext.get("to_epochs")
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (start, end)) or end <= start:
                raise ConfigError(f"an extension must raise the epochs. Received: extension={ext}")
            if budget is not None and start != budget:
                raise ConfigError(f"extensions must follow each other. Received: extensions={list(self.extensions)}")
            budget = end
        if budget is not None and budget != self.epochs:
            raise ConfigError(
                f"the last extension must end at epochs. Received: epochs={self.epochs}, extensions={list(self.extensions)}"
            )

    @property
    def first_budget(self):
        """The epochs the run was started with (before any `--resume --epochs` extension)."""
        return self.extensions[0]["from_epochs"] if self.extensions else self.epochs

    # --- construction -----------------------------------------------------

    @classmethod
    def from_flags(cls, model, recipe=None, **flags):
        """Build from CLI-style flat flags over the `recipe` of `model` (`kerascnn.recipes`).

        Order: a flag that is not None wins, then the recipe's setting, then
        the dataclass default. `recipe=None` is the model's default recipe.
        """
        chosen = get_recipe(model, recipe)
        given_options = {k: v for k, v in (flags.pop("model_options", None) or {}).items() if v is not None}
        flags = chosen.resolve(flags)
        flags["model_options"] = {**chosen.model_options, **given_options}
        flags["recipe"] = chosen.name
        sections = {}
        for section_cls, key in ((DataConfig, "data"), (OptimConfig, "optim")):
            names = {f.name for f in dataclasses.fields(section_cls)}
            sections[key] = section_cls(**{k: flags.pop(k) for k in list(flags) if k in names})
        model_options = flags.pop("model_options", {})
        unknown = set(flags) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown run settings: {sorted(unknown)}")
        return cls(model=model, model_options=model_options, **sections, **flags)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    # --- JSON -------------------------------------------------------------

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["resolved"] = self.resolved.to_dict()
        return d

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        data = DataConfig(**d.pop("data", {}))
        optim = OptimConfig(**d.pop("optim", {}))
        return cls(data=data, optim=optim, **d)

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path):
        from kerascnn.storage import readback

        return cls.from_dict(readback.read_json(path, f"pass a {CONFIG_FILE} written by `fit`"))

    @classmethod
    def read(cls, path):
        """The RunConfig of a config.json, or of a run directory's; ConfigError saying why not.

        Reads what any version of `fit` wrote: a setting an older config.json
        lacks takes today's default. Refused in one line: a path that is not
        there, a file that is not JSON, JSON that is not a kerascnn run's
        config (a Keras model's or another tool's), settings this version does
        not know (a newer kerascnn), and values it no longer accepts.
        """
        from kerascnn.storage import readback

        path = pathlib.Path(path)
        if path.is_dir():
            if not (path / CONFIG_FILE).exists():
                raise ConfigError(f"{path} holds no {CONFIG_FILE}; pass a run directory made by `fit`, or its {CONFIG_FILE}")
            path = path / CONFIG_FILE
        elif not path.exists():
            raise ConfigError(f"{path} does not exist; pass a run directory made by `fit`, or its {CONFIG_FILE}")
        # A folder, an unreadable, empty, truncated or binary file, or not JSON: one DataError line.
        d = readback.read_json(path, f"pass a run directory made by `fit`, or its {CONFIG_FILE}", expect=None)
        if not isinstance(d, dict) or not isinstance(d.get("model"), str) or not all(
            isinstance(d.get(k, {}), dict) for k in ("data", "optim")
        ) or not {"data", "optim"} & set(d):
            raise ConfigError(
                f"{path} is not the {CONFIG_FILE} of a kerascnn run (it has no \"model\", \"data\" and \"optim\" "
                "settings); pass a run directory made by `fit`, or its config.json"
            )
        resolved = d.get("resolved") or {}
        written_by = (resolved.get("versions") if isinstance(resolved, dict) else None) or {}
        version = written_by.get("kerascnn") if isinstance(written_by, dict) else None
        origin = f"written by kerascnn {version or 'of unknown version'}"
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        for key, section in (("data", DataConfig), ("optim", OptimConfig)):
            unknown += sorted(f"{key}.{k}" for k in set(d.get(key, {})) - {f.name for f in dataclasses.fields(section)})
        if unknown:
            raise ConfigError(
                f"{path} ({origin}) has settings this kerascnn does not know: {', '.join(unknown)}; "
                "use the kerascnn version that wrote it, or remove them"
            )
        try:
            return cls.from_dict(d)
        except ConfigError as e:
            raise ConfigError(f"{path} ({origin}) is not a valid run configuration: {e}") from None
        except (TypeError, ValueError, AttributeError) as e:
            raise ConfigError(f"{path} ({origin}) is not a valid run configuration: {e}") from None


def parse_overrides(pairs):
    """(run settings, model options) from `--set NAME=VALUE` pairs; values are Python literals, else strings.

    A run setting (lr, batch_size, label_smoothing, ...: a field of `RunConfig`,
    `DataConfig` or `OptimConfig`) goes to the first; any other name (dropout,
    batch_norm, logit_scale, zero_init_residual, ...) is an option of the
    model's builder, which refuses names it does not take. The benchmarks'
    `--set` (time_to_accuracy.py, ablation.py, gpu_recipes.py's plan entries).
    """
    import ast

    setting_names = {f.name for cls in (RunConfig, DataConfig, OptimConfig) for f in dataclasses.fields(cls)}
    setting_names.discard("model_options")
    settings, options = {}, {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set takes NAME=VALUE. Received: {pair}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        name = name.replace("-", "_")
        (settings if name in setting_names else options)[name] = value
    return settings, options
