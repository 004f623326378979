"""Named search spaces: which hyperparameters a search varies, and how.

A space is a function `define(hp, baseline) -> TrialSettings`. It declares its
hyperparameters on a KerasTuner `HyperParameters` object (so every tuner,
the dry run and the tests see the same space) and turns the values chosen
for one trial into settings for the project's own configuration classes
(model options for the builder, `OptimConfig` and `DataConfig` fields).
Nothing here imports TensorFlow: `hp` only needs KerasTuner's
`Choice`/`Float`/`Boolean`/`conditional_scope` methods.

Spaces:
    seed-grid  the CIFAR-10 AlexNet study's 48 hand-picked runs, as a grid.
    wide       continuous ranges for Bayesian optimisation, random search or
               Hyperband.

With its default values every space builds the model's baseline
architecture (the builder's own defaults). The one exception is seed-grid
on a model whose baseline has both batch norm and dropout (the `_bn` VGGs):
the study never combines them, so its default arm is batch norm alone.
"""

import dataclasses

from kerascnn.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Baseline:
    """What a space needs to know about the model being tuned.

    Attributes:
        model: registry name.
        defaults: the builder's keyword defaults (`registry.model_defaults`).
        image_size: (height, width) the model sees; picks the default
            augmentation preset, as `DataConfig.augment=None` would.
        lr: the SGD learning rate of the run the search starts from (the
            model's default recipe's: 0.01, 0.002 for the plain VGGs'
            `scratch`); the wide space's default.
    """

    model: str
    defaults: dict
    image_size: tuple = (32, 32)
    lr: float = 0.01

    @classmethod
    def of(cls, config, defaults, image_size):
        """The baseline of a search whose trials start from `config` (a `RunConfig`).

        The learning rate is the config's when it trains with SGD (a `tune`
        base comes from the model's default recipe), else SGD's 0.01.
        """
        lr = config.optim.lr if config.optim.optimizer == "sgd" and config.optim.lr else 0.01
        return cls(config.model, defaults, tuple(image_size), lr=lr)

    def has(self, option):
        return option in self.defaults

    @property
    def auto_augment(self):
        # The rule DataConfig.augment=None follows: cifar up to 64 pixels, alexnet above.
        return "cifar" if max(self.image_size) <= 64 else "alexnet"


@dataclasses.dataclass(frozen=True)
class TrialSettings:
    """One trial's choices, split by where they go.

    Attributes:
        model_options: keyword arguments for `create_model`.
        optim: `OptimConfig` fields.
        data: `DataConfig` fields (batch_size, val_split, augment).
    """

    model_options: dict
    optim: dict
    data: dict

    def describe(self):
        """The flat, comparable description that trials.csv and the plots use."""
        opts = self.model_options
        bn, dropout = opts.get("batch_norm"), opts.get("dropout")
        return {
            "optimizer": self.optim["optimizer"],
            "learning_rate": self.optim["lr"],
            "weight_decay": self.optim.get("weight_decay"),
            "batch_size": self.data["batch_size"],
            "val_split": self.data["val_split"],
            "regularization": regularization_label(bn, dropout),
            "batch_norm": bn,
            "dropout": dropout,
            "width_multiplier": opts.get("width_multiplier"),
            "augment": self.data.get("augment"),
        }


def regularization_label(batch_norm, dropout):
    """'batch_norm', 'dropout', 'both' or 'neither': the study's comparison axis."""
    bn, do = bool(batch_norm), bool(dropout)
    return {(True, False): "batch_norm", (False, True): "dropout", (True, True): "both"}.get(
        (bn, do), "neither"
    )


def describe_config(config):
    """`TrialSettings.describe()` of a whole trial `RunConfig` (fixed options included)."""
    data = config.data
    settings = TrialSettings(
        model_options=dict(config.model_options),
        optim=dataclasses.asdict(config.optim),
        data={"batch_size": data.batch_size, "val_split": data.val_split, "augment": data.augment or "auto"},
    )
    return settings.describe()


# --- seed-grid ------------------------------------------------------------

SEED_GRID_LR = {"sgd": (1e-2, 1e-3), "adam": (1e-3, 1e-4), "rmsprop": (1e-3, 1e-4)}


def seed_grid(hp, baseline):
    """The published CIFAR-10 AlexNet study, run by KerasTuner's grid search.

    3 optimizers (adam, sgd with momentum 0.9, rmsprop) x 2 learning rates
    each (1e-3/1e-4 for adam and rmsprop, 1e-2/1e-3 for sgd) x batch 32 or 64
    x split 70/30 or 90/10 x batch norm or dropout (never both, never
    neither) = 48 trials. The learning rate is declared in conditional scopes,
    one per group of optimizers, so the grid never pairs sgd with 1e-4.

    The study's "train/test split" becomes `val_split` (0.3 or 0.1) of the
    training split: the validation part is the tuner's objective; test
    accuracy is measured on the real test split with each trial's best
    checkpoint. As in the study: a constant learning rate and no weight decay.
    """
    default_opt = "sgd"  # the project's (and the AlexNet paper's) baseline optimizer
    optimizer = hp.Choice("optimizer", ["adam", "sgd", "rmsprop"], default=default_opt)
    with hp.conditional_scope("optimizer", ["sgd"]):
        lr_sgd = hp.Choice("lr_sgd", list(SEED_GRID_LR["sgd"]))
    with hp.conditional_scope("optimizer", ["adam", "rmsprop"]):
        lr_adaptive = hp.Choice("lr_adaptive", list(SEED_GRID_LR["adam"]))
    batch_size = hp.Choice("batch_size", [32, 64])
    val_split = hp.Choice("val_split", [0.3, 0.1])
    default_reg = "batch_norm" if baseline.defaults.get("batch_norm") else "dropout"
    regularization = hp.Choice("regularization", ["batch_norm", "dropout"], default=default_reg)

    base_dropout = baseline.defaults.get("dropout") or 0.5
    if regularization == "batch_norm":
        model_options = {"batch_norm": True, "dropout": 0.0}
    else:
        model_options = {"batch_norm": False, "dropout": base_dropout}
    lr = lr_sgd if optimizer == "sgd" else lr_adaptive
    return TrialSettings(
        model_options=model_options,
        optim={"optimizer": optimizer, "lr": lr, "momentum": 0.9, "weight_decay": 0.0, "schedule": "constant"},
        # Augmentation stays as given (`tune --augment`; default: the preset for the image size).
        data={"batch_size": batch_size, "val_split": val_split},
    )


# --- wide -----------------------------------------------------------------

AUGMENT_CHOICES = ("none", "cifar", "alexnet", "inception")
WIDTH_CHOICES = (0.25, 0.5, 1.0)


def wide(hp, baseline):
    """Continuous ranges for random search, Bayesian optimisation and Hyperband.

    optimizer in {sgd, adam, adamw, rmsprop}; learning rate log-uniform in
    [1e-3, 0.3] for sgd and [1e-5, 1e-2] for the adaptive methods (separate
    conditional ranges, since their useful rates differ by ~10x); weight
    decay log-uniform in [1e-6, 1e-2]; batch size 32..256; dropout 0..0.7;
    batch norm on/off; width multiplier 0.25/0.5/1 where the model has one;
    augmentation preset. Defaults: the model's baseline with its default
    training recipe (sgd at the baseline's learning rate, 0.01, or 0.002 for
    the plain VGGs' `scratch` recipe; weight decay 5e-4, batch 128).
    """
    d = baseline.defaults
    optimizer = hp.Choice("optimizer", ["sgd", "adam", "adamw", "rmsprop"], default="sgd")
    with hp.conditional_scope("optimizer", ["sgd"]):
        lr_sgd = hp.Float("lr_sgd", 1e-3, 0.3, sampling="log", default=min(max(baseline.lr, 1e-3), 0.3))
    with hp.conditional_scope("optimizer", ["adam", "adamw", "rmsprop"]):
        lr_adaptive = hp.Float("lr_adaptive", 1e-5, 1e-2, sampling="log", default=1e-3)
    weight_decay = hp.Float("weight_decay", 1e-6, 1e-2, sampling="log", default=5e-4)
    batch_size = hp.Choice("batch_size", [32, 64, 128, 256], default=128)
    model_options = {}
    if baseline.has("dropout"):
        dropout = hp.Float("dropout", 0.0, 0.7, step=0.1, default=float(d.get("dropout") or 0.0))
        model_options["dropout"] = round(dropout, 4)  # 0.30000000000000004 -> 0.3
    if baseline.has("batch_norm"):
        model_options["batch_norm"] = hp.Boolean("batch_norm", default=bool(d.get("batch_norm")))
    if baseline.has("width_multiplier"):
        default_width = d.get("width_multiplier", 1.0)
        choices = sorted(set(WIDTH_CHOICES) | {default_width})
        model_options["width_multiplier"] = hp.Choice("width_multiplier", choices, default=default_width)
    augment = hp.Choice("augment", list(AUGMENT_CHOICES), default=baseline.auto_augment)
    lr = lr_sgd if optimizer == "sgd" else lr_adaptive
    return TrialSettings(
        model_options=model_options,
        optim={
            "optimizer": optimizer,
            "lr": lr,
            "momentum": 0.9,
            "weight_decay": weight_decay,
            "schedule": "constant",
        },
        data={"batch_size": batch_size, "val_split": 0.1, "augment": augment},
    )


SPACES = {"seed-grid": seed_grid, "wide": wide}


def get_space(name):
    """The space function called `name`; ConfigError listing the valid names otherwise."""
    try:
        return SPACES[name]
    except KeyError:
        raise ConfigError(f"unknown search space {name!r}; choose one of {', '.join(SPACES)}") from None


def enumerate_grid(space, baseline):
    """Every distinct combination of a space made of Choice/Boolean values.

    A depth-first walk that honours conditional scopes: the values of a
    hyperparameter are only tried while it is active, so seed-grid yields
    its 48 valid trials and no (optimizer, learning rate) pair outside the
    study's. Returns a list of `(values, TrialSettings)` in grid order.
    Raises ConfigError for a space with continuous ranges.
    """
    import keras_tuner as kt

    results = []

    def walk(fixed):
        hp = kt.HyperParameters()
        hp.values.update(fixed)
        settings = space(hp, baseline)
        free = [p for p in hp.space if hp.is_active(p) and p.name not in fixed]
        if not free:
            active = {p.name: hp.values[p.name] for p in hp.space if hp.is_active(p)}
            results.append((active, settings))
            return
        p = free[0]
        if type(p).__name__ not in ("Choice", "Boolean", "Fixed"):
            raise ConfigError(
                f"the space has a continuous range ({p.name}); it cannot be listed as a grid"
            )
        ordered = [p.default] + [v for v in p.values if v != p.default]
        for value in ordered:
            walk({**fixed, p.name: value})

    walk({})
    return results
